//! Carrying out a checked copy list: each segment in chunks of at most one job step, a Read on
//! the source unit then a Write of that same buffer on the destination unit, so a copy holds
//! one step's buffer at a time whatever its length.

use super::super::job::{JobIo, JobOp, STEP_BYTES};
use super::super::sense::Sense;
use super::list::Segment;
use super::status::ProgressHandle;

/// The chunk being copied: read, then written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Chunk {
    /// Offset from the segment's first block.
    offset: u64,
    blocks: u32,
}

/// A copy in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::scsi) struct Run {
    segments: Vec<Segment>,
    /// The segment being copied.
    current: usize,
    /// Blocks of it copied so far.
    done: u64,
    chunk: Option<Chunk>,
    /// What COPY STATUS reports, for copies with a list identifier.
    progress: Option<ProgressHandle>,
}

impl Run {
    pub(super) fn new(segments: Vec<Segment>, progress: Option<ProgressHandle>) -> Self {
        Self {
            segments,
            current: 0,
            done: 0,
            chunk: None,
            progress,
        }
    }

    /// The Read of the next chunk, or `None` once every segment is copied (the copy is then
    /// recorded as complete).
    pub fn next_read(&mut self) -> Option<JobIo> {
        loop {
            let seg = self.segments.get(self.current)?;
            let left = seg.blocks - self.done;
            if left == 0 {
                if let Some(p) = &self.progress {
                    p.segment_done(0);
                }
                self.current += 1;
                self.done = 0;
                continue;
            }
            let step = u64::from((STEP_BYTES / seg.block_size.max(1)).max(1));
            let blocks = step.min(left);
            let offset = if overlaps_forward(seg) {
                // The destination starts inside the source, further on: copying from the end
                // backwards reads every source block before it is overwritten (memmove).
                left - blocks
            } else {
                self.done
            };
            let blocks = u32::try_from(blocks).unwrap_or(u32::MAX);
            self.chunk = Some(Chunk { offset, blocks });
            return Some(JobIo {
                lun: seg.src_lun,
                op: JobOp::Read {
                    lba: seg.src_lba + offset,
                    blocks,
                },
            });
        }
    }

    /// The block length of the units the current segment copies between.
    pub fn block_size(&self) -> u32 {
        self.segments.get(self.current).map_or(1, |s| s.block_size)
    }

    /// The Write of the chunk just read: the transport writes the buffer the Read filled.
    pub fn write_chunk(&self) -> Option<JobIo> {
        let seg = self.segments.get(self.current)?;
        let chunk = self.chunk?;
        Some(JobIo {
            lun: seg.dst_lun,
            op: JobOp::WriteLastRead {
                lba: seg.dst_lba + chunk.offset,
                blocks: chunk.blocks,
                fua: seg.dst_fua,
            },
        })
    }

    /// The chunk's Write completed.
    pub fn chunk_written(&mut self) {
        let (Some(seg), Some(chunk)) = (self.segments.get(self.current), self.chunk.take()) else {
            return;
        };
        let blocks = u64::from(chunk.blocks);
        let bytes = blocks * u64::from(seg.block_size);
        self.done += blocks;
        let finished = self.done == seg.blocks;
        if let Some(p) = &self.progress {
            if finished {
                p.segment_done(bytes);
            } else {
                p.copied(bytes);
            }
        }
        if finished {
            self.current += 1;
            self.done = 0;
        }
    }

    /// Records the copy's end for COPY STATUS.
    pub fn finish(&self, ok: bool) {
        if let Some(p) = &self.progress {
            p.finish(ok);
        }
    }

    /// The copy failed in the current segment: `sense` as that segment's COPY ABORTED.
    pub fn failed(&self, sense: Sense) -> Sense {
        self.finish(false);
        let number = u16::try_from(self.current).unwrap_or(u16::MAX);
        sense.in_copy_segment(number, None)
    }
}

/// Whether a forward copy of `seg` would overwrite source blocks before reading them.
fn overlaps_forward(seg: &Segment) -> bool {
    seg.src_lun == seg.dst_lun
        && seg.dst_lba > seg.src_lba
        && seg.dst_lba < seg.src_lba + seg.blocks
}
