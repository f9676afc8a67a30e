//! The table of the guest's resources and the host memory they hold.
//!
//! Every creation is checked before anything is allocated: the id (not 0, not in use), the
//! number of resources, and the host bytes the resource will take against the per-guest
//! budget. Sizes are computed with checked arithmetic.

use std::collections::BTreeMap;

use super::config::Limits;
use super::error::{GpuError, GpuResult};
use super::protocol::{
    MemEntry, FORMAT_A8B8G8R8_UNORM, FORMAT_A8R8G8B8_UNORM, FORMAT_B8G8R8A8_UNORM,
    FORMAT_B8G8R8X8_UNORM, FORMAT_R8G8B8A8_UNORM, FORMAT_R8G8B8X8_UNORM, FORMAT_X8B8G8R8_UNORM,
    FORMAT_X8R8G8B8_UNORM,
};

/// Host bytes charged for each backing entry a resource keeps (the entry and its iovec).
pub const BACKING_ENTRY_COST: u64 = 32;

/// The eight 4-byte formats 2D resources and scanouts may use.
pub const FORMATS_2D: [u32; 8] = [
    FORMAT_B8G8R8A8_UNORM,
    FORMAT_B8G8R8X8_UNORM,
    FORMAT_A8R8G8B8_UNORM,
    FORMAT_X8R8G8B8_UNORM,
    FORMAT_R8G8B8A8_UNORM,
    FORMAT_X8B8G8R8_UNORM,
    FORMAT_A8B8G8R8_UNORM,
    FORMAT_R8G8B8X8_UNORM,
];

/// What made a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceKind {
    /// RESOURCE_CREATE_2D.
    TwoD,
    /// RESOURCE_CREATE_3D.
    ThreeD,
    /// RESOURCE_CREATE_BLOB.
    Blob,
}

/// One resource as the device sees it (the renderer keeps the pixels).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resource {
    pub id: u32,
    pub kind: ResourceKind,
    /// virtio/virgl format (0 for blobs).
    pub format: u32,
    pub width: u32,
    pub height: u32,
    /// Host bytes charged for the resource's storage.
    pub host_bytes: u64,
    /// The guest ranges attached as backing, already checked against guest memory.
    pub backing: Option<Vec<MemEntry>>,
    pub uuid: Option<[u8; 16]>,
}

impl Resource {
    /// Whether `(x, y, width, height)` lies inside the resource.
    pub fn contains(&self, x: u32, y: u32, width: u32, height: u32) -> bool {
        let fits =
            |start: u32, len: u32, max: u32| start.checked_add(len).is_some_and(|end| end <= max);
        fits(x, width, self.width) && fits(y, height, self.height)
    }

    /// Whether the resource is 4 bytes per pixel in one of the 2D formats.
    pub fn is_scanout_format(&self) -> bool {
        self.kind != ResourceKind::Blob && FORMATS_2D.contains(&self.format)
    }
}

/// Bytes per pixel of a virgl (gallium `pipe_format`) format, as an upper bound: the common
/// 1-, 2- and 4-byte formats are listed; anything else counts as 16 bytes (the widest plain
/// format, R32G32B32A32).
pub fn virgl_bytes_per_pixel(format: u32) -> u64 {
    match format {
        // L8, A8, I8, R8_UNORM, S8_UINT and friends.
        9..=11 | 23 | 64 => 1,
        // B5G5R5A1, B4G4R4A4, B5G6R5, L16, L8A8, Z16.
        5..=7 | 12 | 13 | 16 => 2,
        f if FORMATS_2D.contains(&f) => 4,
        // R10G10B10A2, Z32, Z32_FLOAT, Z24S8, S8Z24, Z24X8, X8Z24.
        8 | 17..=22 => 4,
        _ => 16,
    }
}

/// The live resources and the host bytes they hold.
#[derive(Debug)]
pub struct ResourceTable {
    resources: BTreeMap<u32, Resource>,
    bytes_in_use: u64,
    limits: Limits,
}

impl ResourceTable {
    pub fn new(limits: Limits) -> ResourceTable {
        ResourceTable {
            resources: BTreeMap::new(),
            bytes_in_use: 0,
            limits,
        }
    }

    /// Checks that resource `id` may be created holding `bytes` host bytes.
    pub fn check_new(&self, id: u32, bytes: u64) -> GpuResult<()> {
        if id == 0 {
            return Err(GpuError::ZeroResourceId);
        }
        if self.resources.contains_key(&id) {
            return Err(GpuError::ResourceIdInUse(id));
        }
        if self.resources.len() >= self.limits.max_resources {
            return Err(GpuError::TooManyResources(self.limits.max_resources));
        }
        self.check_bytes(id, bytes)
    }

    /// Checks that `bytes` more host bytes fit the budget.
    pub fn check_bytes(&self, resource_id: u32, bytes: u64) -> GpuResult<()> {
        let fits = self
            .bytes_in_use
            .checked_add(bytes)
            .is_some_and(|total| total <= self.limits.max_host_bytes);
        if fits {
            return Ok(());
        }
        Err(GpuError::HostMemoryLimit {
            resource_id,
            requested: bytes,
            in_use: self.bytes_in_use,
            limit: self.limits.max_host_bytes,
        })
    }

    /// Adds a resource checked with [`ResourceTable::check_new`].
    pub fn insert(&mut self, resource: Resource) {
        self.bytes_in_use += resource.host_bytes;
        self.resources.insert(resource.id, resource);
    }

    pub fn get(&self, id: u32) -> GpuResult<&Resource> {
        if id == 0 {
            return Err(GpuError::ZeroResourceId);
        }
        self.resources.get(&id).ok_or(GpuError::UnknownResource(id))
    }

    pub fn get_mut(&mut self, id: u32) -> GpuResult<&mut Resource> {
        if id == 0 {
            return Err(GpuError::ZeroResourceId);
        }
        self.resources
            .get_mut(&id)
            .ok_or(GpuError::UnknownResource(id))
    }

    /// Records `entries` as resource `id`'s backing, charging their bookkeeping.
    pub fn set_backing(&mut self, id: u32, entries: Vec<MemEntry>) -> GpuResult<()> {
        let cost = entries.len() as u64 * BACKING_ENTRY_COST;
        self.check_bytes(id, cost)?;
        let resource = self.get_mut(id)?;
        resource.backing = Some(entries);
        self.bytes_in_use += cost;
        Ok(())
    }

    /// Forgets resource `id`'s backing and returns it.
    pub fn take_backing(&mut self, id: u32) -> GpuResult<Option<Vec<MemEntry>>> {
        let backing = self.get_mut(id)?.backing.take();
        if let Some(entries) = &backing {
            self.bytes_in_use -= entries.len() as u64 * BACKING_ENTRY_COST;
        }
        Ok(backing)
    }

    /// Removes resource `id`, giving back everything it was charged.
    pub fn remove(&mut self, id: u32) -> GpuResult<Resource> {
        self.take_backing(id)?;
        let resource = self
            .resources
            .remove(&id)
            .ok_or(GpuError::UnknownResource(id))?;
        self.bytes_in_use -= resource.host_bytes;
        Ok(resource)
    }

    /// Ids of every live resource.
    /// The guest ranges attached as backings, resource by resource.
    pub fn backings(&self) -> impl Iterator<Item = &[MemEntry]> {
        self.resources.values().filter_map(|r| r.backing.as_deref())
    }

    pub fn ids(&self) -> Vec<u32> {
        self.resources.keys().copied().collect()
    }

    /// Number of live resources.
    pub fn len(&self) -> usize {
        self.resources.len()
    }

    /// Host bytes held by all resources.
    pub fn bytes_in_use(&self) -> u64 {
        self.bytes_in_use
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(id: u32, host_bytes: u64) -> Resource {
        Resource {
            id,
            kind: ResourceKind::TwoD,
            format: FORMAT_B8G8R8X8_UNORM,
            width: 1,
            height: 1,
            host_bytes,
            backing: None,
            uuid: None,
        }
    }

    fn table(max_host_bytes: u64, max_resources: usize) -> ResourceTable {
        ResourceTable::new(Limits {
            max_host_bytes,
            max_resources,
            ..Default::default()
        })
    }

    #[test]
    fn check_new_rejects_zero_id() {
        let table = table(100, 10);

        assert!(matches!(
            table.check_new(0, 4),
            Err(GpuError::ZeroResourceId)
        ));
    }

    #[test]
    fn check_new_rejects_reused_id() {
        let mut table = table(100, 10);
        table.insert(resource(1, 4));

        assert!(matches!(
            table.check_new(1, 4),
            Err(GpuError::ResourceIdInUse(1))
        ));
    }

    #[test]
    fn check_new_rejects_bytes_over_budget() {
        let mut table = table(100, 10);
        table.insert(resource(1, 60));

        assert!(matches!(
            table.check_new(2, 41),
            Err(GpuError::HostMemoryLimit { in_use: 60, .. })
        ));
    }

    #[test]
    fn check_new_rejects_resource_over_count() {
        let mut table = table(100, 1);
        table.insert(resource(1, 1));

        assert!(matches!(
            table.check_new(2, 1),
            Err(GpuError::TooManyResources(1))
        ));
    }

    #[test]
    fn remove_gives_back_pixels_and_backing() {
        let mut table = table(1000, 10);
        table.insert(resource(1, 60));
        table.set_backing(1, vec![MemEntry::default(); 3]).unwrap();

        table.remove(1).unwrap();

        assert_eq!(table.bytes_in_use(), 0);
    }

    #[test]
    fn contains_rejects_overflowing_rect() {
        let mut r = resource(1, 4);
        r.width = 100;

        assert!(!r.contains(u32::MAX, 0, 2, 1));
    }
}
