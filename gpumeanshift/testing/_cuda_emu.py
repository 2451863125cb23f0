"""C++ text of the CUDA-on-CPU emulation: a header and the generated launcher unit.

Kept as Python strings so the emulator needs no package data besides the
kernels. Execution model: the blocks of a grid run one after another, in an
order the launch chooses (CUDA promises none: a kernel whose result depends
on the order in which blocks run, say through the order of its atomics, is
caught by running them in a scrambled order); each block is one
``#pragma omp parallel num_threads(blockDim)`` region, so each CUDA thread is
an OpenMP thread. ``__syncthreads()`` is an OpenMP barrier and
dynamic shared memory is one buffer per launch, poisoned with 0xFF bytes
(NaN for floats) before each block so reads of never-written shared memory
show up in results.

Floating point as NVRTC builds it (see ``emulator.build_library``): the
unit is compiled with ``-ffp-contract=fast`` (and ``-mfma`` where the CPU
has it), so ``a * b + c`` may become one FMA, as NVRTC contracts by default;
the intrinsics ``__fmul_rn`` / ``__fadd_rn`` / ``__dmul_rn`` / ``__dadd_rn``
pass their result through an empty asm statement, which the compiler cannot
fuse across, so they stay rounded once each, as on the device. A launch with
``ftz`` set runs each thread with the x86 MXCSR flush-to-zero and
denormals-are-zero bits on (CuPy's ``-ftz=true`` for float), restored after.
"""

HEADER = r"""
// cuda_emu.h -- just enough CUDA to run gpumeanshift kernels on a CPU.
#pragma once
#include <cmath>
#include <math.h>
#include <cstdlib>
#include <cstddef>
#include <cstring>
#include <string>
#include <utility>
#include <type_traits>
#include <omp.h>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define EMU_HAS_MXCSR 1
#else
#define EMU_HAS_MXCSR 0
#endif

#define MS_EMULATED 1
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
#define __shared__ static

struct uint3 { unsigned int x, y, z; };
struct dim3 { unsigned int x, y, z; };

inline thread_local uint3 threadIdx;
inline uint3 blockIdx;
inline dim3 blockDim;
inline dim3 gridDim;
inline unsigned char* emu_dyn_smem = nullptr;
inline int emu_or_flag = 0;

#define MS_DYNAMIC_SHARED(T, name) T* name = reinterpret_cast<T*>(emu_dyn_smem)

using std::exp;
using std::fma;  // float and double overloads, as CUDA's
using std::sqrt;
using ::expf;
using ::sqrtf;

// Rounded once, never contracted into an FMA with a neighbouring operation
// (the empty asm hides the value from the compiler's contraction).
#if defined(__x86_64__) || defined(__i386__)
#define EMU_OPAQUE(v) asm volatile("" : "+x"(v))
#elif defined(__aarch64__)
#define EMU_OPAQUE(v) asm volatile("" : "+w"(v))
#else
#define EMU_OPAQUE(v) asm volatile("" : "+m"(v))
#endif
inline float __fmul_rn(float a, float b) { float r = a * b; EMU_OPAQUE(r); return r; }
inline float __fadd_rn(float a, float b) { float r = a + b; EMU_OPAQUE(r); return r; }
inline double __dmul_rn(double a, double b) { double r = a * b; EMU_OPAQUE(r); return r; }
inline double __dadd_rn(double a, double b) { double r = a + b; EMU_OPAQUE(r); return r; }

inline void __syncthreads() {
#pragma omp barrier
}

inline int __syncthreads_or(int pred) {
#pragma omp barrier
#pragma omp single
    emu_or_flag = 0;
    // implicit barrier after single
    if (pred) {
#pragma omp atomic write
        emu_or_flag = 1;
    }
#pragma omp barrier
    int r;
#pragma omp atomic read
    r = emu_or_flag;
#pragma omp barrier
    return r;
}

inline int atomicAdd(int* p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }

// ---- signatures: one code per kernel parameter ----------------------------
template <typename A> struct emu_code;
template <> struct emu_code<int> { static const char* s() { return "i4"; } };
template <> struct emu_code<unsigned int> { static const char* s() { return "u4"; } };
template <> struct emu_code<long long> { static const char* s() { return "i8"; } };
template <> struct emu_code<float> { static const char* s() { return "f4"; } };
template <> struct emu_code<double> { static const char* s() { return "f8"; } };
template <typename P> struct emu_code<P*> {
    static const char* s() {
        static std::string r = std::string("*") + emu_code<typename std::remove_cv<P>::type>::s();
        return r.c_str();
    }
};

template <typename... A>
const char* emu_signature(void (*)(A...)) {
    static std::string r;
    if (r.empty()) {
        const char* parts[] = {emu_code<A>::s()..., ""};
        for (std::size_t i = 0; i + 1 < sizeof(parts) / sizeof(parts[0]); ++i) {
            if (i) r += ",";
            r += parts[i];
        }
        if (r.empty()) r = "-";
    }
    return r.c_str();
}

template <typename... A, std::size_t... I>
inline void emu_call(void (*f)(A...), void** args, std::index_sequence<I...>) {
    f(*static_cast<typename std::remove_reference<A>::type*>(args[I])...);
}

// Returns 0 on success, 1 when OpenMP could not give the block its threads.
// ftz: flush float denormal results to zero and read denormal inputs as zero
// (MXCSR FTZ | DAZ, per OpenMP thread, restored after the block).
// Block order: the i-th block run is the one of linear index
// (first + stride * i) mod (gx * gy * gz), x fastest; stride is coprime to
// the block count, so every block runs once (first 0, stride 1: in order).
template <typename... A>
int emu_run(void (*f)(A...), unsigned gx, unsigned gy, unsigned gz, unsigned bx,
            unsigned by, unsigned bz, std::size_t shmem, void** args, int ftz,
            unsigned long long first, unsigned long long stride) {
    const int nthreads = (int)(bx * by * bz);
    unsigned char* smem = static_cast<unsigned char*>(std::malloc(shmem ? shmem : 1));
    gridDim = dim3{gx, gy, gz};
    blockDim = dim3{bx, by, bz};
    emu_dyn_smem = smem;
    omp_set_dynamic(0);
    int err = 0;
    const unsigned long long nblocks = (unsigned long long)gx * gy * gz;
    for (unsigned long long i = 0; i < nblocks && !err; ++i) {
        const unsigned long long lin = (unsigned long long)(
            ((unsigned __int128)stride * i + first) % nblocks);
        blockIdx = uint3{(unsigned)(lin % gx), (unsigned)((lin / gx) % gy),
                         (unsigned)(lin / ((unsigned long long)gx * gy))};
        std::memset(smem, 0xFF, shmem ? shmem : 1);
#pragma omp parallel num_threads(nthreads)
        {
            if (omp_get_num_threads() != nthreads) {
#pragma omp atomic write
                err = 1;
            } else {
                const unsigned t = (unsigned)omp_get_thread_num();
                threadIdx = uint3{t % bx, (t / bx) % by, t / (bx * by)};
#if EMU_HAS_MXCSR
                const unsigned csr = _mm_getcsr();
                if (ftz) _mm_setcsr(csr | 0x8040u);  // FTZ (bit 15) | DAZ (bit 6)
#endif
                emu_call(f, args, std::index_sequence_for<A...>{});
#if EMU_HAS_MXCSR
                _mm_setcsr(csr);
#endif
            }
        }
    }
    std::free(smem);
    emu_dyn_smem = nullptr;
    return err;
}

#define EMU_KERNEL(IDX, ...)                                                        \
    extern "C" int emu_launch_##IDX(unsigned gx, unsigned gy, unsigned gz,         \
                                    unsigned bx, unsigned by, unsigned bz,         \
                                    std::size_t shmem, void** args, int ftz,       \
                                    unsigned long long first,                      \
                                    unsigned long long stride) {                   \
        return emu_run(&__VA_ARGS__, gx, gy, gz, bx, by, bz, shmem, args, ftz,     \
                       first, stride);                                              \
    }                                                                               \
    extern "C" const char* emu_sig_##IDX() { return emu_signature(&__VA_ARGS__); }

extern "C" int emu_has_ftz() { return EMU_HAS_MXCSR; }
"""
