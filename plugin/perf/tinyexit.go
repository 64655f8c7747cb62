package perf

import (
	"encoding/binary"
	"fmt"
	"runtime"
)

// TinyExit returns a minimal static ELF executable for this machine's
// architecture (amd64 or arm64) that calls exit(0) and nothing else: no
// dynamic loader, no libc, one page mapped. The live-cost load execs it
// instead of /bin/true when asked to: on this project's VM a fork and exec
// of the dynamically linked /bin/true costs about 5 ms of CPU (loader,
// libc, page-table updates, each a hypercall here), so two cores cannot
// start 1000 of them per second, while the exec of this one costs a small
// fraction. Its audit event has one PATH record for the program where
// /bin/true's has two (the program and its loader). It returns an error
// on other architectures.
func TinyExit() ([]byte, error) {
	var machine uint16
	var code []byte
	switch runtime.GOARCH {
	case "amd64":
		machine = 62 // EM_X86_64
		code = []byte{
			0xb8, 60, 0, 0, 0, // mov $60 (exit), %eax
			0x31, 0xff, // xor %edi, %edi
			0x0f, 0x05, // syscall
		}
	case "arm64":
		machine = 183                                             // EM_AARCH64
		code = binary.LittleEndian.AppendUint32(nil, 0xd2800000)  // mov x0, #0
		code = binary.LittleEndian.AppendUint32(code, 0xd2800ba8) // mov x8, #93 (exit)
		code = binary.LittleEndian.AppendUint32(code, 0xd4000001) // svc #0
	default:
		return nil, fmt.Errorf("no tiny exit program for %s", runtime.GOARCH)
	}
	const (
		base    = 0x400000
		ehSize  = 64 // ELF64 file header
		phSize  = 56 // one program header
		codeOff = ehSize + phSize
	)
	size := uint64(codeOff + len(code))
	le := binary.LittleEndian
	b := make([]byte, 0, size)
	// e_ident: magic, ELFCLASS64, ELFDATA2LSB, EV_CURRENT, System V ABI, padding.
	b = append(b, 0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	b = le.AppendUint16(b, 2) // e_type ET_EXEC
	b = le.AppendUint16(b, machine)
	b = le.AppendUint32(b, 1)            // e_version
	b = le.AppendUint64(b, base+codeOff) // e_entry
	b = le.AppendUint64(b, ehSize)       // e_phoff
	b = le.AppendUint64(b, 0)            // e_shoff: no sections
	b = le.AppendUint32(b, 0)            // e_flags
	b = le.AppendUint16(b, ehSize)       // e_ehsize
	b = le.AppendUint16(b, phSize)       // e_phentsize
	b = le.AppendUint16(b, 1)            // e_phnum
	b = le.AppendUint16(b, 64)           // e_shentsize
	b = le.AppendUint16(b, 0)            // e_shnum
	b = le.AppendUint16(b, 0)            // e_shstrndx
	b = le.AppendUint32(b, 1)            // p_type PT_LOAD
	b = le.AppendUint32(b, 5)            // p_flags R+X
	b = le.AppendUint64(b, 0)            // p_offset: the whole file
	b = le.AppendUint64(b, base)         // p_vaddr
	b = le.AppendUint64(b, base)         // p_paddr
	b = le.AppendUint64(b, size)         // p_filesz
	b = le.AppendUint64(b, size)         // p_memsz
	b = le.AppendUint64(b, 0x1000)       // p_align
	return append(b, code...), nil
}
