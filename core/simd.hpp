#pragma once
// slitstep/core: instruction-set clones for hot numerical kernels.
//
// SLITSTEP_SIMD_CLONES in front of a function definition makes GCC compile it twice, for the
// baseline x86-64 (SSE2) and for AVX2, and pick the version for the running CPU when the program
// loads (GNU ifunc). The build stays portable (no -march), and a machine with AVX2 runs the hot
// loops 4 doubles wide. Results are bit-identical between the clones: the AVX2 target does not
// enable FMA, so no multiply-add is fused, and every kernel marked with this keeps a fixed
// summation order per output value (vectorisation only runs across independent outputs).
// Elsewhere (other compilers / architectures) the macro is empty.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define SLITSTEP_SIMD_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define SLITSTEP_SIMD_CLONES
#endif

// SLITSTEP_AVX512_KERNEL in front of a function definition compiles it for AVX-512F with
// multiply-add contraction OFF (AVX-512F includes FMA; without contraction every product and sum
// is rounded as in the AVX2 and baseline code, so the same bits). Such a function must only be
// called after a run-time check (__builtin_cpu_supports("avx512f")) and only where
// SLITSTEP_HAS_AVX512_KERNELS is 1; elsewhere the macro is empty and the check is false.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define SLITSTEP_HAS_AVX512_KERNELS 1
#define SLITSTEP_AVX512_KERNEL __attribute__((target("avx512f"), optimize("fp-contract=off")))
#else
#define SLITSTEP_HAS_AVX512_KERNELS 0
#define SLITSTEP_AVX512_KERNEL
#endif
