//! Ceph RBD logical units: `path = "rbd:POOL/IMAGE"` and the LUN keys that say how to reach the
//! cluster (`ceph_conf`, `ceph_user`, `keyring`). Parsing, validation and the model type live
//! here so that the rest of the configuration only needs small hooks.

use std::collections::HashMap;
use std::path::PathBuf;

use super::error::ConfigError;
use super::model::{Backing, TargetConfig};

/// The cephx user when the LUN does not name one.
pub const DEFAULT_CEPH_USER: &str = "admin";

/// A Ceph RBD image and how to connect to its cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RbdBacking {
    pub pool: String,
    pub image: String,
    /// `ceph_conf`; `None` = librados's own search (`$CEPH_CONF`, `/etc/ceph/ceph.conf`,
    /// `~/.ceph/config`, `./ceph.conf`).
    pub conf: Option<PathBuf>,
    /// `ceph_user`: the cephx id without `client.`.
    pub user: String,
    /// `keyring`; `None` = the keyring the Ceph configuration names.
    pub keyring: Option<PathBuf>,
}

impl RbdBacking {
    /// An image reached with the default client settings.
    pub fn new(pool: impl Into<String>, image: impl Into<String>) -> Self {
        RbdBacking {
            pool: pool.into(),
            image: image.into(),
            conf: None,
            user: DEFAULT_CEPH_USER.into(),
            keyring: None,
        }
    }

    /// Checks names and client settings; `prefix` is the LUN's field path.
    pub(super) fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        check_name("pool", &self.pool)
            .map_err(|e| ConfigError::invalid(format!("{prefix}.path"), e))?;
        check_name("image", &self.image)
            .map_err(|e| ConfigError::invalid(format!("{prefix}.path"), e))?;
        check_user(&self.user)
            .map_err(|e| ConfigError::invalid(format!("{prefix}.ceph_user"), e))?;
        for (key, path) in [("ceph_conf", &self.conf), ("keyring", &self.keyring)] {
            if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                return Err(ConfigError::invalid(
                    format!("{prefix}.{key}"),
                    "path must not be empty",
                ));
            }
        }
        Ok(())
    }

    /// The cluster and image, for telling two LUNs on one image apart from two on different ones.
    fn identity(&self) -> ImageId<'_> {
        (self.conf.as_ref(), &self.pool, &self.image)
    }
}

/// An image as (ceph.conf, pool, image).
type ImageId<'a> = (Option<&'a PathBuf>, &'a str, &'a str);

/// Parses what follows `rbd:` in a path: `POOL/IMAGE`.
pub(super) fn parse_rbd(rest: &str) -> Result<Backing, String> {
    let usage = || format!("expected rbd:POOL/IMAGE, got \"rbd:{rest}\"");
    let (pool, image) = rest.split_once('/').ok_or_else(usage)?;
    if image.contains('/') {
        return Err(format!(
            "\"rbd:{rest}\": RBD namespaces are not supported (use rbd:POOL/IMAGE)"
        ));
    }
    check_name("pool", pool)?;
    check_name("image", image)?;
    Ok(Backing::Rbd(RbdBacking::new(pool, image)))
}

fn check_name(what: &str, s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err(format!(
            "{what} name must not be empty (use rbd:POOL/IMAGE)"
        ));
    }
    if s.len() > 255 {
        return Err(format!(
            "{what} name is {} bytes long, the limit is 255",
            s.len()
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| c.is_control() || c.is_whitespace() || matches!(c, '/' | '@'))
    {
        return Err(format!("{what} name {s:?} must not contain {c:?}"));
    }
    Ok(())
}

fn check_user(user: &str) -> Result<(), String> {
    if let Some(id) = user.strip_prefix("client.") {
        return Err(format!(
            "write the cephx id without \"client.\" ({id:?} for {user:?})"
        ));
    }
    let ok = !user.is_empty()
        && user.len() <= 64
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{user:?} is not a cephx id: 1..=64 letters, digits, '_', '-' or '.'"
        ))
    }
}

/// The `ceph_*` keys of one `[[target.lun]]`, as read from TOML.
#[derive(Debug, Default)]
pub(super) struct RawClient {
    pub conf: Option<String>,
    pub user: Option<String>,
    pub keyring: Option<String>,
}

impl RawClient {
    /// Puts the keys into an `rbd:` backing; any of them on another kind of store is an error.
    pub fn apply(self, backing: Backing, prefix: &str) -> Result<Backing, ConfigError> {
        let Backing::Rbd(mut rbd) = backing else {
            let named = [
                ("ceph_conf", self.conf.is_some()),
                ("ceph_user", self.user.is_some()),
                ("keyring", self.keyring.is_some()),
            ];
            if let Some((key, _)) = named.iter().find(|(_, set)| *set) {
                return Err(ConfigError::invalid(
                    format!("{prefix}.{key}"),
                    "only applies to rbd:POOL/IMAGE logical units",
                ));
            }
            return Ok(backing);
        };
        rbd.conf = self.conf.map(PathBuf::from);
        rbd.keyring = self.keyring.map(PathBuf::from);
        if let Some(user) = self.user {
            rbd.user = user;
        }
        Ok(Backing::Rbd(rbd))
    }

    /// The keys to write for a backing (none but for `rbd:`; the default user is left out).
    pub fn of(backing: &Backing) -> RawClient {
        match backing {
            Backing::Rbd(r) => RawClient {
                conf: r.conf.as_ref().map(|p| p.to_string_lossy().into_owned()),
                user: (r.user != DEFAULT_CEPH_USER).then(|| r.user.clone()),
                keyring: r.keyring.as_ref().map(|p| p.to_string_lossy().into_owned()),
            },
            _ => RawClient::default(),
        }
    }
}

/// Two LUNs may share an RBD image only if both are read-only: two writers in one process would
/// be two image handles, passing the image's exclusive lock back and forth on every write.
pub(super) fn check_shared_images(targets: &[TargetConfig]) -> Result<(), ConfigError> {
    let mut seen: HashMap<ImageId<'_>, (usize, usize, bool)> = HashMap::new();
    for (t, target) in targets.iter().enumerate() {
        for (l, lun) in target.luns.iter().enumerate() {
            let Backing::Rbd(r) = &lun.backing else {
                continue;
            };
            match seen.get(&r.identity()) {
                Some(&(ft, fl, ro)) if !(ro && lun.read_only) => {
                    return Err(ConfigError::invalid(
                        format!("target[{t}].lun[{l}].path"),
                        format!(
                            "rbd:{}/{} is already used by target[{ft}].lun[{fl}] (sharing an image is only allowed when both LUNs are read-only)",
                            r.pool, r.image
                        ),
                    ));
                }
                Some(_) => {}
                None => {
                    seen.insert(r.identity(), (t, l, lun.read_only));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{Config, LunConfig};
    use super::*;

    const T: &str = "iqn.2026-11.io.ringtgt:ceph";

    fn doc(lun: &str) -> String {
        format!("[[target]]\nname = \"{T}\"\n[[target.lun]]\n{lun}\n")
    }

    fn err(lun: &str) -> String {
        Config::from_toml_str(&doc(lun)).unwrap_err().to_string()
    }

    #[test]
    fn rbd_path_with_client_keys_parses_and_round_trips() {
        let c = Config::from_toml_str(&doc(
            "path = \"rbd:volumes/disk-1\"\nceph_conf = \"/etc/ceph/other.conf\"\nceph_user = \"iscsi-gw\"\nkeyring = \"/etc/ceph/gw.keyring\"",
        ))
        .unwrap();
        let Backing::Rbd(r) = &c.targets[0].luns[0].backing else {
            panic!("not rbd: {:?}", c.targets[0].luns[0].backing);
        };
        assert_eq!((r.pool.as_str(), r.image.as_str()), ("volumes", "disk-1"));
        assert_eq!(r.conf, Some("/etc/ceph/other.conf".into()));
        assert_eq!(r.user, "iscsi-gw");
        assert_eq!(r.keyring, Some("/etc/ceph/gw.keyring".into()));
        let text = c.to_toml_string().unwrap();
        assert_eq!(Config::from_toml_str(&text).unwrap(), c, "{text}");
    }

    #[test]
    fn rbd_defaults_are_the_default_search_and_admin() {
        let c = Config::from_toml_str(&doc("path = \"rbd:rbd/img\"")).unwrap();
        assert_eq!(
            c.targets[0].luns[0].backing,
            Backing::Rbd(RbdBacking::new("rbd", "img"))
        );
        assert_eq!(c.targets[0].luns[0].backing.to_string(), "rbd:rbd/img");
        let text = c.to_toml_string().unwrap();
        assert!(!text.contains("ceph_user"), "{text}");
    }

    #[test]
    fn bad_rbd_paths_and_keys_name_the_field() {
        let cases = [
            ("path = \"rbd:\"", "target[0].lun[0].path: expected rbd:POOL/IMAGE, got \"rbd:\""),
            ("path = \"rbd:pool\"", "target[0].lun[0].path: expected rbd:POOL/IMAGE, got \"rbd:pool\""),
            ("path = \"rbd:/img\"", "target[0].lun[0].path: pool name must not be empty (use rbd:POOL/IMAGE)"),
            ("path = \"rbd:p/\"", "target[0].lun[0].path: image name must not be empty (use rbd:POOL/IMAGE)"),
            ("path = \"rbd:p/ns/img\"", "target[0].lun[0].path: \"rbd:p/ns/img\": RBD namespaces are not supported (use rbd:POOL/IMAGE)"),
            ("path = \"rbd:p/img@snap\"", "target[0].lun[0].path: image name \"img@snap\" must not contain '@'"),
            ("path = \"rbd:p/a b\"", "target[0].lun[0].path: image name \"a b\" must not contain ' '"),
            ("path = \"rbd:p/i\"\nceph_user = \"client.admin\"", "target[0].lun[0].ceph_user: write the cephx id without \"client.\" (\"admin\" for \"client.admin\")"),
            ("path = \"rbd:p/i\"\nceph_user = \"\"", "target[0].lun[0].ceph_user: \"\" is not a cephx id: 1..=64 letters, digits, '_', '-' or '.'"),
            ("path = \"rbd:p/i\"\nceph_conf = \"\"", "target[0].lun[0].ceph_conf: path must not be empty"),
            ("path = \"rbd:p/i\"\nkeyring = \"\"", "target[0].lun[0].keyring: path must not be empty"),
            ("path = \"ram:1MiB\"\nceph_conf = \"/etc/ceph/ceph.conf\"", "target[0].lun[0].ceph_conf: only applies to rbd:POOL/IMAGE logical units"),
            ("path = \"/x.img\"\nkeyring = \"/k\"", "target[0].lun[0].keyring: only applies to rbd:POOL/IMAGE logical units"),
        ];
        for (lun, want) in cases {
            assert_eq!(err(lun), want, "{lun}");
        }
    }

    #[test]
    fn one_image_backs_two_luns_only_when_both_are_read_only() {
        let two = |ro: &str| {
            format!(
                "[[target]]\nname = \"{T}\"\n[[target.lun]]\npath = \"rbd:p/i\"\n{ro}\n[[target]]\nname = \"{T}2\"\n[[target.lun]]\npath = \"rbd:p/i\"\n{ro}\n"
            )
        };
        let e = Config::from_toml_str(&two("")).unwrap_err().to_string();
        assert_eq!(
            e,
            "target[1].lun[0].path: rbd:p/i is already used by target[0].lun[0] (sharing an image is only allowed when both LUNs are read-only)"
        );
        Config::from_toml_str(&two("read_only = true")).unwrap();
        // Another cluster's image of the same name is another image.
        let mut c = Config::from_toml_str(&two("read_only = true")).unwrap();
        c.targets[1].luns[0].read_only = false;
        if let Backing::Rbd(r) = &mut c.targets[1].luns[0].backing {
            r.conf = Some("/etc/ceph/b.conf".into());
        }
        c.validate().unwrap();
    }

    #[test]
    fn cli_lun_takes_rbd_with_default_client() {
        let lun = LunConfig::new(0, super::super::parse_backing("rbd:rbd/x").unwrap());
        assert_eq!(lun.backing, Backing::Rbd(RbdBacking::new("rbd", "x")));
    }
}
