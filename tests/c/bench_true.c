/* bench_true: does nothing and exits 0, like true(1). The benchmark runs it
 * (compiled -static) to time `ringfence run` end to end against a native
 * fork+exec+wait of the same binary. Prints nothing. */
int main(void) {
    return 0;
}
