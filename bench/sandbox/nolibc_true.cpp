/* drover_bench_nolibc_true: exits 0 with no C library at all (no start-up code, one page).
 * The sandbox benchmark's --program for measuring spawning itself: a static glibc program's
 * start-up runs cpuid, which traps to the hypervisor on some VMs and costs most of a
 * millisecond there, hiding what the spawn costs. */
#if defined(__x86_64__)
extern "C" __attribute__((naked, noreturn)) void _start() {
    __asm__ volatile("mov $60, %eax\n\txor %edi, %edi\n\tsyscall\n");
}
#elif defined(__aarch64__)
extern "C" __attribute__((naked, noreturn)) void _start() {
    __asm__ volatile("mov x8, #93\n\tmov x0, #0\n\tsvc #0\n");
}
#else
#error "drover_bench_nolibc_true: x86-64 or aarch64"
#endif
