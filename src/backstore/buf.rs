//! Page-aligned I/O buffers: `O_DIRECT` needs the memory address aligned to the device's logical
//! block size, and 4096 covers every device we serve.

use bytemuck::{Pod, Zeroable};

pub const IO_ALIGN: usize = 4096;

#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C, align(4096))]
struct Page([u8; IO_ALIGN]);

/// An owned, zero-initialised, 4096-aligned byte buffer of a fixed logical length.
/// Moving an `IoBuf` never moves its bytes, so it can be lent to the kernel while in flight.
pub struct IoBuf {
    pages: Vec<Page>,
    len: usize,
}

impl IoBuf {
    pub fn zeroed(len: usize) -> Self {
        let pages = vec![Page([0; IO_ALIGN]); len.div_ceil(IO_ALIGN)];
        IoBuf { pages, len }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Capacity in bytes, a multiple of the alignment.
    pub fn capacity(&self) -> usize {
        self.pages.len() * IO_ALIGN
    }

    pub fn as_slice(&self) -> &[u8] {
        &bytemuck::cast_slice::<Page, u8>(&self.pages)[..self.len]
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut::<Page, u8>(&mut self.pages)[..self.len]
    }
}

impl std::fmt::Debug for IoBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IoBuf({} bytes)", self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_page_aligned_and_sized() {
        for len in [0, 1, 512, 4096, 4097, 1 << 20] {
            let mut b = IoBuf::zeroed(len);
            assert_eq!(b.len(), len);
            assert_eq!(b.as_slice().as_ptr() as usize % IO_ALIGN, 0);
            assert!(b.capacity() >= len);
            b.as_mut_slice().fill(7);
            assert!(b.as_slice().iter().all(|&x| x == 7));
        }
    }
}
