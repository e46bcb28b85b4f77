// drover_static_true: exits 0 at once. Linked -static so that execve has no dynamic loader
// or shared libraries to map: the exec-static workload measures execve itself.
int main() {
    return 0;
}
