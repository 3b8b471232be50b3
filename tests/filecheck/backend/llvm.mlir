// RUN: env QUANTIR_NO_AMX=1 quantir-opt %s --split-input-file -p quantir-cpu -t llvm | filecheck %s
// RUN: quantir-opt %s --split-input-file -p quantir-cpu-exact -t llvm | filecheck %s --check-prefix=EXACT

// CPU kernels: an always-inlined body with noalias pointers behind an
// exported entry `void k(i64 lo, i64 hi, ptr argv)` that unpacks argv.
// Dequantize carries no fast-math flags (bit-identical to ggml) and stores
// non-temporally: whole vectors where the address is 64-byte aligned, else
// element-aligned (which LLVM splits into 8-byte streaming stores).
func.func @deq(%w: tensor<?x34xui8>) -> tensor<?x32xf32> {
  %y = quant.dequantize #quant.encoding<q8_0> %w : (tensor<?x34xui8>) -> tensor<?x32xf32>
  func.return %y : tensor<?x32xf32>
}

// CHECK:       define internal void @"deq_kernel0.body"(i64 %{{.*}}, i64 %{{.*}}, ptr noalias %{{.*}}, i64 %{{.*}}, ptr noalias %{{.*}}, i64 %{{.*}}) alwaysinline
// CHECK:         load <2 x i8>
// CHECK:         fpext half %{{.*}} to float
// CHECK:         sitofp <32 x i8> %{{.*}} to <32 x float>
// CHECK:         fmul <32 x float>
// CHECK:         [[ADDR:%.*]] = ptrtoint ptr %{{.*}} to i64
// CHECK:         icmp eq i64 %{{.*}}, 0
// CHECK:         store <32 x float> %{{.*}}, ptr %{{.*}}, align 64, !nontemporal
// CHECK:         store <32 x float> %{{.*}}, ptr %{{.*}}, align 4, !nontemporal
// CHECK:       define void @"deq_kernel0"(i64 %{{.*}}, i64 %{{.*}}, ptr %{{.*}})
// CHECK:         load i64, ptr
// CHECK:         call void @"deq_kernel0.body"

// -----

// qmatmul (the default int8 path): the first kernel quantizes x to int8
// runs of 32 (scale from a NaN-propagating max, round half to even through
// the 1.5 * 2^23 trick), the second multiplies integer codes with integer
// dot products (vpdpbusd where the host has VNNI, else vpmaddubsw +
// vpmaddwd), converts each dot to float once and accumulates with FMAs.
// Each block first prefetches the weight bytes 4096 ahead, with a GEP that
// is not `inbounds` (past the last row it points beyond the buffer;
// prefetches never fault). The operand named "iv" that also adds 4096 is the
// chunk loop over rows of x (1 MB of codes is 4096 rows of K = 256).
// On the exact path (EXACT) it accumulates float weights times exact x with
// vector FMAs and reduces with reassociation (the first kernel sums x per
// sub-block).
func.func @mv(%x: tensor<?x256xf32>, %w: tensor<?x144xui8>) -> tensor<?x?xf32> {
  %y = quant.qmatmul #quant.encoding<q4_k> %x, %w : (tensor<?x256xf32>, tensor<?x144xui8>) -> tensor<?x?xf32>
  func.return %y : tensor<?x?xf32>
}

// CHECK:       define internal void @"mv_kernel1.body"
// CHECK:         [[AHEAD:%.*]] = add i64 %".{{[0-9]+}}", 4096
// CHECK-NEXT:    [[PTR:%.*]] = getelementptr i8, ptr %{{.*}}, i64 [[AHEAD]]
// CHECK-NEXT:    call void @"llvm.prefetch.p0"(ptr [[PTR]], i32 0, i32 3, i32 1)
// CHECK:         call <{{.*}}> @"llvm.x86.{{avx512.vpdpbusd.256|avx2.pmadd.ub.sw}}"
// CHECK:         sitofp <8 x i32> %{{.*}} to <8 x float>
// CHECK:         call <8 x float> @"llvm.fma.v8f32"
// CHECK:         call fast float @"llvm.vector.reduce.fadd.v8f32"(float 0x8000000000000000, <8 x float>
// CHECK:       define internal void @"mv_kernel0.body"
// CHECK:         call float @"llvm.vector.reduce.fmaximum.v32f32"
// CHECK:         fadd <32 x float> %{{.*}}, <float 0x4168000000000000,
// CHECK:         sub <32 x i32> %{{.*}}, <i32 1262485504,
// CHECK:         trunc <32 x i32> %{{.*}} to <32 x i8>

// EXACT:       define internal void @"mv_kernel1.body"
// EXACT:         [[AHEAD:%.*]] = add i64 %".{{[0-9]+}}", 4096
// EXACT-NEXT:    [[PTR:%.*]] = getelementptr i8, ptr %{{.*}}, i64 [[AHEAD]]
// EXACT-NEXT:    call void @"llvm.prefetch.p0"(ptr [[PTR]], i32 0, i32 3, i32 1)
// EXACT:         fmul contract reassoc <32 x float>
// EXACT:         call <32 x float> @"llvm.fma.v32f32"
// EXACT:         call fast float @"llvm.vector.reduce.fadd.v32f32"(float 0x8000000000000000, <32 x float>
// EXACT:       declare <32 x float> @"llvm.fma.v32f32"(<32 x float> %{{.*}}, <32 x float> %{{.*}}, <32 x float> %{{.*}})
