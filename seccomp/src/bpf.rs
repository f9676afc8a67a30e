//! A classic-BPF interpreter for seccomp programs, and the program's wire forms.
//!
//! It accepts exactly the instructions the kernel's seccomp checker permits and runs them
//! on a `seccomp_data`, so a compiled policy can be checked without installing it.
//! Malformed programs give an error, never a panic.

use seccompiler::{sock_filter, BpfProgram};
use serde::{Deserialize, Serialize};

/// `AUDIT_ARCH_X86_64`: what `seccomp_data.arch` holds for native x86_64 syscalls.
pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// Set in the syscall number of x32-ABI syscalls (which share `AUDIT_ARCH_X86_64`).
pub const X32_SYSCALL_BIT: i32 = 0x4000_0000;
/// Size of `struct seccomp_data`.
const DATA_LEN: u32 = 64;
/// The kernel's limit on program length (BPF_MAXINSNS).
pub const MAX_INSTRUCTIONS: usize = 4096;
const SCRATCH_SLOTS: usize = 16;

/// What the kernel gives a seccomp filter (`struct seccomp_data`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeccompData {
    /// Syscall number.
    pub nr: i32,
    /// `AUDIT_ARCH_*` of the calling convention.
    pub arch: u32,
    /// Address of the syscall instruction.
    pub instruction_pointer: u64,
    /// The six syscall arguments.
    pub args: [u64; 6],
}

impl SeccompData {
    /// A native x86_64 call of syscall `nr` with `args`.
    pub fn x86_64(nr: i64, args: [u64; 6]) -> SeccompData {
        SeccompData {
            nr: nr as i32,
            arch: AUDIT_ARCH_X86_64,
            instruction_pointer: 0,
            args,
        }
    }

    /// The 32-bit word at byte `offset`, as a BPF `LD W ABS` reads it (host byte order).
    fn word(&self, offset: u32) -> Option<u32> {
        if !offset.is_multiple_of(4) || offset >= DATA_LEN {
            return None;
        }
        let mut bytes = [0u8; DATA_LEN as usize];
        bytes[0..4].copy_from_slice(&self.nr.to_ne_bytes());
        bytes[4..8].copy_from_slice(&self.arch.to_ne_bytes());
        bytes[8..16].copy_from_slice(&self.instruction_pointer.to_ne_bytes());
        for (i, arg) in self.args.iter().enumerate() {
            bytes[16 + 8 * i..24 + 8 * i].copy_from_slice(&arg.to_ne_bytes());
        }
        let at = offset as usize;
        Some(u32::from_ne_bytes([
            bytes[at],
            bytes[at + 1],
            bytes[at + 2],
            bytes[at + 3],
        ]))
    }
}

/// Why a program could not be run or decoded.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BpfError {
    /// The program has no instructions.
    #[error("the program is empty")]
    Empty,
    /// More instructions than the kernel accepts.
    #[error("the program has {0} instructions; the kernel accepts at most 4096")]
    TooLong(usize),
    /// `LD W ABS` outside `seccomp_data` or not 4-byte aligned.
    #[error("instruction {pc}: load from offset {offset} is outside seccomp_data or unaligned")]
    LoadOutOfBounds {
        /// Instruction index.
        pc: usize,
        /// The offset.
        offset: u32,
    },
    /// Scratch memory index outside 0..16.
    #[error("instruction {pc}: scratch memory slot {slot} does not exist (0 to 15)")]
    MemOutOfBounds {
        /// Instruction index.
        pc: usize,
        /// The slot.
        slot: u32,
    },
    /// A jump past the end of the program.
    #[error("instruction {pc}: jump past the end of the program")]
    JumpOutOfBounds {
        /// Instruction index.
        pc: usize,
    },
    /// An opcode seccomp does not allow.
    #[error("instruction {pc}: opcode {code:#06x} is not allowed in seccomp programs")]
    BadOpcode {
        /// Instruction index.
        pc: usize,
        /// The opcode.
        code: u16,
    },
    /// Execution ran off the end without a `RET`.
    #[error("the program ends without a return instruction")]
    NoReturn,
    /// A byte buffer whose length is not a multiple of 8.
    #[error("{0} bytes is not a whole number of 8-byte instructions")]
    BadLength(usize),
}

/// Runs `program` on `data` and returns the raw `SECCOMP_RET_*` value
/// (decode it with [`crate::Action::from_ret`]).
pub fn run(program: &[sock_filter], data: &SeccompData) -> Result<u32, BpfError> {
    if program.is_empty() {
        return Err(BpfError::Empty);
    }
    if program.len() > MAX_INSTRUCTIONS {
        return Err(BpfError::TooLong(program.len()));
    }
    let mut machine = Machine::default();
    let mut pc = 0;
    while let Some(insn) = program.get(pc) {
        match machine.step(pc, insn, data)? {
            Step::Return(value) => return Ok(value),
            Step::Skip(n) => {
                let next = pc + 1 + n;
                if n > 0 && next >= program.len() {
                    return Err(BpfError::JumpOutOfBounds { pc });
                }
                pc = next;
            }
        }
    }
    Err(BpfError::NoReturn)
}

#[derive(Default)]
struct Machine {
    a: u32,
    x: u32,
    mem: [u32; SCRATCH_SLOTS],
}

enum Step {
    Return(u32),
    Skip(usize),
}

// Instruction classes and fields (linux/bpf_common.h).
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const ST: u16 = 0x02;
const STX: u16 = 0x03;
const ALU: u16 = 0x04;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const MISC: u16 = 0x07;
const W: u16 = 0x00;
const IMM: u16 = 0x00;
const ABS: u16 = 0x20;
const MEM: u16 = 0x60;
const LEN: u16 = 0x80;
const SRC_X: u16 = 0x08;
const RVAL_A: u16 = 0x10;
const TXA: u16 = 0x80;

impl Machine {
    fn slot(pc: usize, k: u32) -> Result<usize, BpfError> {
        match k as usize {
            slot if slot < SCRATCH_SLOTS => Ok(slot),
            _ => Err(BpfError::MemOutOfBounds { pc, slot: k }),
        }
    }

    fn step(
        &mut self,
        pc: usize,
        insn: &sock_filter,
        data: &SeccompData,
    ) -> Result<Step, BpfError> {
        let code = insn.code;
        let k = insn.k;
        let bad = BpfError::BadOpcode { pc, code };
        match code & 0x07 {
            LD => {
                self.a = match code & !0x07 {
                    x if x == W | ABS => data
                        .word(k)
                        .ok_or(BpfError::LoadOutOfBounds { pc, offset: k })?,
                    x if x == W | IMM => k,
                    x if x == W | MEM => self.mem[Self::slot(pc, k)?],
                    x if x == W | LEN => DATA_LEN,
                    _ => return Err(bad),
                }
            }
            LDX => {
                self.x = match code & !0x07 {
                    x if x == W | IMM => k,
                    x if x == W | MEM => self.mem[Self::slot(pc, k)?],
                    x if x == W | LEN => DATA_LEN,
                    _ => return Err(bad),
                }
            }
            ST if code == ST => self.mem[Self::slot(pc, k)?] = self.a,
            STX if code == STX => self.mem[Self::slot(pc, k)?] = self.x,
            ALU => {
                let operand = if code & SRC_X != 0 { self.x } else { k };
                match alu(code & 0xf0, self.a, operand) {
                    Some(Alu::Value(v)) => self.a = v,
                    Some(Alu::DivideByZero) => return Ok(Step::Return(0)),
                    None => return Err(bad),
                }
            }
            JMP => {
                return skip_of(code, insn, self.a, self.x)
                    .ok_or(bad)
                    .map(Step::Skip)
            }
            RET => {
                return match code & !0x07 {
                    0 => Ok(Step::Return(k)),
                    RVAL_A => Ok(Step::Return(self.a)),
                    _ => Err(bad),
                }
            }
            MISC => match code & !0x07 {
                0 => self.x = self.a,
                TXA => self.a = self.x,
                _ => return Err(bad),
            },
            _ => return Err(bad),
        }
        Ok(Step::Skip(0))
    }
}

enum Alu {
    Value(u32),
    DivideByZero,
}

fn alu(op: u16, a: u32, b: u32) -> Option<Alu> {
    let value = match op {
        0x00 => a.wrapping_add(b),
        0x10 => a.wrapping_sub(b),
        0x20 => a.wrapping_mul(b),
        0x30 => return Some(a.checked_div(b).map_or(Alu::DivideByZero, Alu::Value)),
        0x40 => a | b,
        0x50 => a & b,
        0x60 => a.checked_shl(b).unwrap_or(0),
        0x70 => a.checked_shr(b).unwrap_or(0),
        0x80 => a.wrapping_neg(),
        0x90 => return Some(a.checked_rem(b).map_or(Alu::DivideByZero, Alu::Value)),
        0xa0 => a ^ b,
        _ => return None,
    };
    Some(Alu::Value(value))
}

/// How many instructions a jump skips, or `None` for an unknown jump opcode.
fn skip_of(code: u16, insn: &sock_filter, a: u32, x: u32) -> Option<usize> {
    let operand = if code & SRC_X != 0 { x } else { insn.k };
    let taken = match code & 0xf0 {
        0x00 if code & SRC_X == 0 => return Some(insn.k as usize),
        0x10 => a == operand,
        0x20 => a > operand,
        0x30 => a >= operand,
        0x40 => a & operand != 0,
        _ => return None,
    };
    Some(usize::from(if taken { insn.jt } else { insn.jf }))
}

/// A non-jump instruction.
pub(crate) fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

/// A conditional jump: `jt`/`jf` instructions skipped when true/false.
pub(crate) fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// Packs one instruction as the 8 bytes of a `struct sock_filter` on x86_64
/// (little endian: code, jt, jf, k), as a `u64`.
pub fn to_word(insn: &sock_filter) -> u64 {
    u64::from(insn.code)
        | u64::from(insn.jt) << 16
        | u64::from(insn.jf) << 24
        | u64::from(insn.k) << 32
}

/// Unpacks an instruction packed by [`to_word`].
pub fn from_word(word: u64) -> sock_filter {
    sock_filter {
        code: word as u16,
        jt: (word >> 16) as u8,
        jf: (word >> 24) as u8,
        k: (word >> 32) as u32,
    }
}

/// The program as the raw `sock_filter` array that seccomp(2) takes (8 bytes each).
pub fn bpf_to_bytes(program: &[sock_filter]) -> Vec<u8> {
    program
        .iter()
        .flat_map(|insn| to_word(insn).to_le_bytes())
        .collect()
}

/// Reads a raw `sock_filter` array written by [`bpf_to_bytes`] (or any seccomp tool).
pub fn bpf_from_bytes(bytes: &[u8]) -> Result<BpfProgram, BpfError> {
    if !bytes.len().is_multiple_of(8) {
        return Err(BpfError::BadLength(bytes.len()));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| {
            from_word(u64::from_le_bytes([
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
            ]))
        })
        .collect())
}

/// The program as a list of packed instructions, for JSON tubes (see [`to_word`]).
pub fn bpf_to_words(program: &[sock_filter]) -> Vec<u64> {
    program.iter().map(to_word).collect()
}

/// The program from packed instructions (see [`bpf_to_words`]).
pub fn bpf_from_words(words: &[u64]) -> BpfProgram {
    words.iter().map(|&w| from_word(w)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> SeccompData {
        SeccompData::x86_64(257, [1, 2, 3, 0x1_0000_0004, 5, 6])
    }

    #[test]
    fn load_abs_reads_nr_and_argument_halves() {
        let program = [stmt(LD | W | ABS, 16 + 3 * 8 + 4), stmt(RET | RVAL_A, 0)];

        assert_eq!(run(&program, &data()), Ok(1));
    }

    #[test]
    fn unaligned_load_is_an_error() {
        let program = [stmt(LD | W | ABS, 2), stmt(RET, 0)];

        assert_eq!(
            run(&program, &data()),
            Err(BpfError::LoadOutOfBounds { pc: 0, offset: 2 })
        );
    }

    #[test]
    fn load_past_seccomp_data_is_an_error() {
        let program = [stmt(LD | W | ABS, 64), stmt(RET, 0)];

        assert_eq!(
            run(&program, &data()),
            Err(BpfError::LoadOutOfBounds { pc: 0, offset: 64 })
        );
    }

    #[test]
    fn jump_past_end_is_an_error() {
        let program = [stmt(JMP, 5), stmt(RET, 0)];

        assert_eq!(
            run(&program, &data()),
            Err(BpfError::JumpOutOfBounds { pc: 0 })
        );
    }

    #[test]
    fn conditional_jump_past_end_is_an_error() {
        let program = [jump(JMP | 0x10, 1, 0, 9), stmt(RET, 0)];

        assert_eq!(
            run(&program, &data()),
            Err(BpfError::JumpOutOfBounds { pc: 0 })
        );
    }

    #[test]
    fn falling_off_the_end_is_an_error() {
        let program = [stmt(LD | W | IMM, 1)];

        assert_eq!(run(&program, &data()), Err(BpfError::NoReturn));
    }

    #[test]
    fn scratch_memory_round_trips_through_st_and_ldx() {
        let program = [
            stmt(LD | W | IMM, 42),
            stmt(ST, 15),
            stmt(LDX | W | MEM, 15),
            stmt(MISC | TXA, 0),
            stmt(RET | RVAL_A, 0),
        ];

        assert_eq!(run(&program, &data()), Ok(42));
    }

    #[test]
    fn scratch_slot_16_is_an_error() {
        let program = [stmt(ST, 16), stmt(RET, 0)];

        assert_eq!(
            run(&program, &data()),
            Err(BpfError::MemOutOfBounds { pc: 0, slot: 16 })
        );
    }

    #[test]
    fn alu_ops_compute_with_k_and_x() {
        let program = [
            stmt(LDX | W | IMM, 3),
            stmt(LD | W | LEN, 0),
            stmt(ALU, 6), // ADD K
            stmt(ALU | 0x10 | SRC_X, 0),
            stmt(ALU | 0x20, 2),
            stmt(ALU | 0x30, 4),
            stmt(ALU | 0x90, 7),
            stmt(ALU | 0x60, 4),
            stmt(ALU | 0x70, 1),
            stmt(ALU | 0xa0, 0xff),
            stmt(ALU | 0x40, 0x100),
            stmt(ALU | 0x50, 0x1f0),
            stmt(RET | RVAL_A, 0),
        ];

        // ((64 + 6 - 3) * 2 / 4) % 7 = 5; << 4 = 80; >> 1 = 40; ^ 0xff = 0xd7; | 0x100; & 0x1f0
        assert_eq!(run(&program, &data()), Ok(0x1d0));
    }

    #[test]
    fn division_by_zero_returns_zero_like_the_kernel() {
        let program = [
            stmt(LD | W | IMM, 1),
            stmt(ALU | 0x30 | SRC_X, 0),
            stmt(RET, 7),
        ];

        assert_eq!(run(&program, &data()), Ok(0));
    }

    #[test]
    fn jset_tests_any_bit() {
        let program = [
            stmt(LD | W | ABS, 0),
            jump(JMP | 0x40, 0x100, 0, 1),
            stmt(RET, 1),
            stmt(RET, 2),
        ];

        assert_eq!(run(&program, &data()), Ok(1));
    }

    #[test]
    fn jgt_and_jge_against_x() {
        let program = [
            stmt(LD | W | ABS, 0),
            stmt(LDX | W | IMM, 257),
            jump(JMP | 0x20 | SRC_X, 0, 1, 0),
            jump(JMP | 0x30 | SRC_X, 0, 1, 0),
            stmt(RET, 1),
            stmt(RET, 2),
        ];

        assert_eq!(run(&program, &data()), Ok(2));
    }

    #[test]
    fn opcodes_seccomp_forbids_are_errors() {
        let program = [stmt(LD | 0x10 | ABS, 0), stmt(RET, 0)];

        assert_eq!(
            run(&program, &data()),
            Err(BpfError::BadOpcode { pc: 0, code: 0x30 })
        );
    }

    #[test]
    fn bytes_round_trip() {
        let program = vec![jump(0x15, 0xc000_003e, 1, 2), stmt(RET, 0x7fff_0000)];

        assert_eq!(bpf_from_bytes(&bpf_to_bytes(&program)), Ok(program));
    }

    #[test]
    fn bytes_of_odd_length_are_refused() {
        assert_eq!(bpf_from_bytes(&[0; 9]), Err(BpfError::BadLength(9)));
    }
}
