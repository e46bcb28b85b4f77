// drover_holder: where a warm set's holder waits once its namespaces are set up (warm.hpp).
//
// drover's child sets the set up, puts the hold pipe's read end at descriptor 0, closes every
// other descriptor and execs this through a descriptor it opened before (execveat,
// AT_EMPTY_PATH). It reads descriptor 0 until EOF (the set dropped, or drover gone) and exits.
// No C library: a static glibc program's start-up runs cpuid, which traps to the hypervisor
// on some VMs and made the holder's execve cost as much as a job's. One page, two system calls.
#if defined(__x86_64__)
extern "C" __attribute__((naked, noreturn)) void _start() {
    __asm__ volatile(
        "sub $16, %rsp\n"
        "1:\n\t"
        "xor %eax, %eax\n\t"     // read(0, sp, 1)
        "xor %edi, %edi\n\t"
        "mov %rsp, %rsi\n\t"
        "mov $1, %edx\n\t"
        "syscall\n\t"
        "cmp $-4, %rax\n\t"      // EINTR: again
        "je 1b\n\t"
        "test %rax, %rax\n\t"    // a byte: nobody writes one, but keep waiting
        "jg 1b\n\t"
        "mov $231, %eax\n\t"     // exit_group(0) at EOF or an error
        "xor %edi, %edi\n\t"
        "syscall\n");
}
#else
#error "drover_holder: x86-64 only (the posix_spawn path it serves is too)"
#endif
