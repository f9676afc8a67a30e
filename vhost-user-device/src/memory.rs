//! The guest memory table a vhost-user frontend shares with the backend.
//!
//! The frontend sends each RAM region as a file descriptor (a memfd) with its guest physical
//! address, its size, the offset of the region in the file, and the virtual address at which
//! the *frontend* mapped it. Vring addresses arrive as frontend virtual addresses, so the table
//! keeps that address too, to translate them into guest physical addresses.
//!
//! Every region is checked before it is mapped: nonzero size, no address overflow, the file
//! really holds `mmap_offset + size` bytes (mapping past the end of a memfd would turn a later
//! guest access into SIGBUS), and no two regions overlap in guest physical or frontend virtual
//! space.

use std::fs::File;
use std::sync::Arc;

use thiserror::Error;
use vm_memory::{FileOffset, GuestAddress, GuestMemoryMmap, GuestRegionMmap, MmapRegion};

/// Most regions a table may hold (the answer to GET_MAX_MEM_SLOTS).
pub const MAX_REGIONS: usize = 32;

/// Why a memory region was refused.
#[derive(Debug, Error)]
pub enum MemoryError {
    #[error("memory region at guest address {gpa:#x} has size zero")]
    EmptyRegion { gpa: u64 },
    #[error("memory region at guest address {gpa:#x} (size {size:#x}) overflows an address space")]
    Overflow { gpa: u64, size: u64 },
    #[error("memory region needs file bytes up to {end:#x}, but its file holds {len:#x}")]
    BeyondFile { end: u64, len: u64 },
    #[error("inspecting a memory region's file failed: {0}")]
    Stat(#[source] std::io::Error),
    #[error("memory region at guest address {gpa:#x} overlaps another region")]
    Overlap { gpa: u64 },
    #[error("the memory table would hold more than {MAX_REGIONS} regions")]
    TooManyRegions,
    #[error("no memory region matches guest address {gpa:#x} with size {size:#x}")]
    NoSuchRegion { gpa: u64, size: u64 },
    #[error("mapping a memory region failed: {0}")]
    Map(#[source] vm_memory::mmap::MmapRegionError),
    #[error("building the guest memory map failed: {0}")]
    Build(#[source] vm_memory::GuestRegionCollectionError),
    #[error("frontend address {addr:#x} (+{len:#x}) is not inside any shared memory region")]
    Unmapped { addr: u64, len: u64 },
}

/// One region as the frontend describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionSpec {
    /// Guest physical address of the first byte.
    pub guest_phys_addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// Where the frontend mapped the region in its own address space.
    pub user_addr: u64,
    /// Offset of the region's first byte in its file.
    pub mmap_offset: u64,
}

impl RegionSpec {
    fn gpa_end(&self) -> Option<u64> {
        self.guest_phys_addr.checked_add(self.size)
    }

    fn user_end(&self) -> Option<u64> {
        self.user_addr.checked_add(self.size)
    }

    fn overlaps(&self, other: &RegionSpec) -> bool {
        let gpa = self.guest_phys_addr < other.guest_phys_addr + other.size
            && other.guest_phys_addr < self.guest_phys_addr + self.size;
        let user = self.user_addr < other.user_addr + other.size
            && other.user_addr < self.user_addr + self.size;
        gpa || user
    }
}

/// A mapped region with the frontend's description of it.
#[derive(Debug, Clone)]
struct Region {
    spec: RegionSpec,
    mapping: Arc<GuestRegionMmap>,
}

/// The regions currently shared by the frontend, mapped into this process.
#[derive(Debug, Default)]
pub struct MemoryTable {
    regions: Vec<Region>,
    memory: Arc<GuestMemoryMmap>,
}

impl MemoryTable {
    /// Replaces the whole table (SET_MEM_TABLE). On error the old table stays in place.
    pub fn replace(&mut self, specs: &[RegionSpec], files: Vec<File>) -> Result<(), MemoryError> {
        if specs.len() > MAX_REGIONS {
            return Err(MemoryError::TooManyRegions);
        }
        let mut regions: Vec<Region> = Vec::with_capacity(specs.len());
        for (spec, file) in specs.iter().zip(files) {
            let region = map_region(spec, file)?;
            if regions.iter().any(|r| r.spec.overlaps(spec)) {
                return Err(MemoryError::Overlap {
                    gpa: spec.guest_phys_addr,
                });
            }
            regions.push(region);
        }
        self.install(regions)
    }

    /// Adds one region (ADD_MEM_REG).
    pub fn add(&mut self, spec: &RegionSpec, file: File) -> Result<(), MemoryError> {
        if self.regions.len() >= MAX_REGIONS {
            return Err(MemoryError::TooManyRegions);
        }
        let region = map_region(spec, file)?;
        if self.regions.iter().any(|r| r.spec.overlaps(spec)) {
            return Err(MemoryError::Overlap {
                gpa: spec.guest_phys_addr,
            });
        }
        let mut regions = self.regions.clone();
        regions.push(region);
        self.install(regions)
    }

    /// Removes the region with this guest address and size (REM_MEM_REG).
    pub fn remove(&mut self, guest_phys_addr: u64, size: u64) -> Result<(), MemoryError> {
        let index = self
            .regions
            .iter()
            .position(|r| r.spec.guest_phys_addr == guest_phys_addr && r.spec.size == size)
            .ok_or(MemoryError::NoSuchRegion {
                gpa: guest_phys_addr,
                size,
            })?;
        let mut regions = self.regions.clone();
        regions.remove(index);
        self.install(regions)
    }

    /// The guest memory, as device code reads and writes it.
    pub fn memory(&self) -> Arc<GuestMemoryMmap> {
        Arc::clone(&self.memory)
    }

    /// Whether any memory is mapped.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }

    /// Translates a frontend virtual address range into a guest physical address; the whole
    /// `len` bytes must lie inside one region.
    pub fn user_to_guest(&self, addr: u64, len: u64) -> Result<GuestAddress, MemoryError> {
        let end = addr
            .checked_add(len)
            .ok_or(MemoryError::Unmapped { addr, len })?;
        self.regions
            .iter()
            .find(|r| addr >= r.spec.user_addr && end <= r.spec.user_addr + r.spec.size)
            .map(|r| GuestAddress(r.spec.guest_phys_addr + (addr - r.spec.user_addr)))
            .ok_or(MemoryError::Unmapped { addr, len })
    }

    fn install(&mut self, mut regions: Vec<Region>) -> Result<(), MemoryError> {
        regions.sort_by_key(|r| r.spec.guest_phys_addr);
        let memory = GuestMemoryMmap::from_arc_regions(
            regions.iter().map(|r| Arc::clone(&r.mapping)).collect(),
        );
        // An empty table is valid (the frontend removed every region); vm-memory refuses to
        // build an empty collection, so keep the default one.
        let memory = match memory {
            Ok(memory) => memory,
            Err(_) if regions.is_empty() => GuestMemoryMmap::default(),
            Err(e) => return Err(MemoryError::Build(e)),
        };
        self.memory = Arc::new(memory);
        self.regions = regions;
        Ok(())
    }
}

/// Checks one region against its file and maps it shared, read-write.
fn map_region(spec: &RegionSpec, file: File) -> Result<Region, MemoryError> {
    if spec.size == 0 {
        return Err(MemoryError::EmptyRegion {
            gpa: spec.guest_phys_addr,
        });
    }
    let overflow = MemoryError::Overflow {
        gpa: spec.guest_phys_addr,
        size: spec.size,
    };
    let file_end = spec.mmap_offset.checked_add(spec.size);
    let (Some(_), Some(_), Some(file_end)) = (spec.gpa_end(), spec.user_end(), file_end) else {
        return Err(overflow);
    };
    let size = usize::try_from(spec.size).map_err(|_| MemoryError::Overflow {
        gpa: spec.guest_phys_addr,
        size: spec.size,
    })?;
    let len = file.metadata().map_err(MemoryError::Stat)?.len();
    if file_end > len {
        return Err(MemoryError::BeyondFile { end: file_end, len });
    }
    let mapping = MmapRegion::from_file(FileOffset::new(file, spec.mmap_offset), size)
        .map_err(MemoryError::Map)?;
    let mapping = GuestRegionMmap::new(mapping, GuestAddress(spec.guest_phys_addr)).ok_or(
        MemoryError::Overflow {
            gpa: spec.guest_phys_addr,
            size: spec.size,
        },
    )?;
    Ok(Region {
        spec: *spec,
        mapping: Arc::new(mapping),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::{Bytes, GuestMemoryBackend};

    fn memfd(len: u64) -> File {
        let fd = nix::sys::memfd::memfd_create("test-ram", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .expect("memfd_create");
        let file = File::from(fd);
        file.set_len(len).expect("set_len");
        file
    }

    fn spec(gpa: u64, size: u64, user: u64) -> RegionSpec {
        RegionSpec {
            guest_phys_addr: gpa,
            size,
            user_addr: user,
            mmap_offset: 0,
        }
    }

    #[test]
    fn replace_maps_regions_readable_at_their_guest_address() {
        let mut table = MemoryTable::default();

        table
            .replace(&[spec(0x10000, 0x4000, 0x7f00_0000)], vec![memfd(0x4000)])
            .unwrap();
        table
            .memory()
            .write_obj(0xabcdu32, GuestAddress(0x10010))
            .unwrap();

        assert_eq!(
            table
                .memory()
                .read_obj::<u32>(GuestAddress(0x10010))
                .unwrap(),
            0xabcd
        );
    }

    #[test]
    fn region_past_the_end_of_its_file_is_refused() {
        let mut table = MemoryTable::default();

        let result = table.replace(&[spec(0, 0x8000, 0x1000)], vec![memfd(0x4000)]);

        assert!(matches!(result, Err(MemoryError::BeyondFile { .. })));
    }

    #[test]
    fn overflowing_region_is_refused() {
        let mut table = MemoryTable::default();

        let result = table.replace(&[spec(u64::MAX - 0xfff, 0x2000, 0)], vec![memfd(0x2000)]);

        assert!(matches!(result, Err(MemoryError::Overflow { .. })));
    }

    #[test]
    fn overlapping_regions_are_refused_and_the_old_table_kept() {
        let mut table = MemoryTable::default();
        table
            .replace(&[spec(0, 0x1000, 0x1000)], vec![memfd(0x1000)])
            .unwrap();

        let result = table.replace(
            &[spec(0, 0x2000, 0x10000), spec(0x1000, 0x1000, 0x20000)],
            vec![memfd(0x2000), memfd(0x1000)],
        );

        assert!(matches!(result, Err(MemoryError::Overlap { .. })));
        assert_eq!(table.memory().num_regions(), 1);
    }

    #[test]
    fn user_address_translates_to_guest_address() {
        let mut table = MemoryTable::default();
        table
            .replace(&[spec(0x100000, 0x4000, 0x5550_0000)], vec![memfd(0x4000)])
            .unwrap();

        let gpa = table.user_to_guest(0x5550_1000, 0x100).unwrap();

        assert_eq!(gpa, GuestAddress(0x101000));
    }

    #[test]
    fn user_range_crossing_the_region_end_is_unmapped() {
        let mut table = MemoryTable::default();
        table
            .replace(&[spec(0, 0x1000, 0x9000)], vec![memfd(0x1000)])
            .unwrap();

        let result = table.user_to_guest(0x9f00, 0x200);

        assert!(matches!(result, Err(MemoryError::Unmapped { .. })));
    }

    #[test]
    fn add_then_remove_region_leaves_table_empty() {
        let mut table = MemoryTable::default();
        table.add(&spec(0, 0x1000, 0x9000), memfd(0x1000)).unwrap();

        table.remove(0, 0x1000).unwrap();

        assert!(table.is_empty());
    }
}
