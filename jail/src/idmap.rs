//! The jail's user-namespace id maps, and which identities a caller may map.

use thiserror::Error;

use super::config::JailIds;

/// Identities this caller cannot give a jail.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum IdMapError {
    #[error("the jail may not run as uid 0 or gid 0 (asked for {uid}:{gid})")]
    Root { uid: u32, gid: u32 },
    #[error(
        "an unprivileged supervisor (uid {euid}, gid {egid}) can map only its own ids into the \
         jail, not {uid}:{gid}"
    )]
    NotOwnIds {
        euid: u32,
        egid: u32,
        uid: u32,
        gid: u32,
    },
    #[error("only a root supervisor can give the jail supplementary groups")]
    SupplementaryGroups,
}

/// What to write into `/proc/PID/{setgroups,uid_map,gid_map}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct IdMaps {
    /// `Some("deny")` for an unprivileged caller (the kernel requires it before gid_map);
    /// `None` for root, so the child can shed the host root's supplementary groups.
    pub setgroups: Option<&'static str>,
    pub uid_map: String,
    pub gid_map: String,
}

impl IdMaps {
    /// One-to-one maps of the jail's ids, checked against what the caller may map.
    pub fn for_caller(ids: &JailIds, euid: u32, egid: u32) -> Result<IdMaps, IdMapError> {
        if ids.uid == 0 || ids.gid == 0 {
            return Err(IdMapError::Root {
                uid: ids.uid,
                gid: ids.gid,
            });
        }
        let root = euid == 0;
        if !root && (ids.uid != euid || ids.gid != egid) {
            return Err(IdMapError::NotOwnIds {
                euid,
                egid,
                uid: ids.uid,
                gid: ids.gid,
            });
        }
        if !root && !ids.supplementary_gids.is_empty() {
            return Err(IdMapError::SupplementaryGroups);
        }
        let mut gids = vec![ids.gid];
        gids.extend(ids.supplementary_gids.iter().filter(|&&g| g != ids.gid));
        gids.sort_unstable();
        gids.dedup();
        Ok(IdMaps {
            setgroups: if root { None } else { Some("deny") },
            uid_map: format!("{0} {0} 1\n", ids.uid),
            gid_map: gids.iter().map(|g| format!("{g} {g} 1\n")).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(uid: u32, gid: u32, supplementary_gids: Vec<u32>) -> JailIds {
        JailIds {
            uid,
            gid,
            supplementary_gids,
        }
    }

    #[test]
    fn root_caller_maps_nobody_one_to_one_and_leaves_setgroups_allowed() {
        let maps = IdMaps::for_caller(&ids(65534, 65534, vec![]), 0, 0).unwrap();

        assert_eq!(
            maps,
            IdMaps {
                setgroups: None,
                uid_map: "65534 65534 1\n".into(),
                gid_map: "65534 65534 1\n".into(),
            }
        );
    }

    #[test]
    fn root_caller_maps_each_supplementary_group() {
        let maps = IdMaps::for_caller(&ids(65534, 65534, vec![106, 65534]), 0, 0).unwrap();

        assert_eq!(maps.gid_map, "106 106 1\n65534 65534 1\n");
    }

    #[test]
    fn unprivileged_caller_maps_itself_with_setgroups_denied() {
        let maps = IdMaps::for_caller(&ids(1000, 1000, vec![]), 1000, 1000).unwrap();

        assert_eq!(maps.setgroups, Some("deny"));
        assert_eq!(maps.uid_map, "1000 1000 1\n");
    }

    #[test]
    fn unprivileged_caller_cannot_map_other_ids() {
        let err = IdMaps::for_caller(&ids(65534, 65534, vec![]), 1000, 1000).unwrap_err();

        assert!(matches!(err, IdMapError::NotOwnIds { .. }), "{err}");
    }

    #[test]
    fn jail_never_runs_as_root() {
        let err = IdMaps::for_caller(&ids(0, 0, vec![]), 0, 0).unwrap_err();

        assert_eq!(err, IdMapError::Root { uid: 0, gid: 0 });
    }
}
