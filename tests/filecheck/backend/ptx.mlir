// RUN: quantir-opt %s --split-input-file -p quantir-gpu -t ptx | filecheck %s
// RUN: quantir-opt %s --split-input-file -p quantir-gpu -t "ptx{arch=sm_80}" | filecheck %s --check-prefix=SM80

// GPU kernels are PTX entries taking (lo, hi) then global pointers; thread
// ids come from special registers. Dequantize uses round-to-nearest mul/sub
// that ptxas may not fuse, so results stay bit-identical.
func.func @deq(%w: tensor<?x144xui8>) -> tensor<?x256xf32> {
  %y = quant.dequantize #quant.encoding<q4_k> %w : (tensor<?x144xui8>) -> tensor<?x256xf32>
  func.return %y : tensor<?x256xf32>
}

// CHECK:       .version
// CHECK:       .target sm_90
// CHECK:       .visible .entry deq_kernel0(
// CHECK:         .param .u64 .ptr .global .align 1 deq_kernel0_param_2
// CHECK:         %tid.x
// CHECK:         %ctaid.x
// CHECK:         cvt.f32.f16
// CHECK:         mul.rn.f32
// CHECK:         sub.rn.f32
// CHECK-NOT:     fma.rn.f32
// CHECK:         ret;

// SM80:        .target sm_80

// -----

// gather: the dequantize kernel reading the row its thread's index names,
// loaded once per thread (sign-extended) and clamped to the last row with an
// unsigned min before it addresses the table.
func.func @embed(%w: tensor<?x34xui8>, %ids: tensor<?xi32>) -> tensor<?x32xf32> {
  %y = quant.gather #quant.encoding<q8_0> %w, %ids : (tensor<?x34xui8>, tensor<?xi32>) -> tensor<?x32xf32>
  func.return %y : tensor<?x32xf32>
}

// CHECK:       .visible .entry embed_kernel0(
// CHECK:         ld.global.nc.s32 [[ID:%rd[0-9]+]]
// CHECK:         min.u64 [[ROW:%rd[0-9]+]], %rd{{[0-9]+}}, [[ID]]
// CHECK:         mad.lo.s64 %rd{{[0-9]+}}, [[ROW]], 34,
// CHECK:         cvt.f32.f16
// CHECK:         mul.rn.f32
// CHECK:         st.global.b32
// CHECK:         ret;

// -----

// qmatmul: one warp per row, each thread 16 lanes of a block (Q4_K's
// gpu_lane_width): 16-byte loads of codes and of x; partial sums combined
// with butterfly shuffles.
func.func @mv(%x: tensor<?x512xf32>, %w: tensor<?x288xui8>) -> tensor<?x?xf32> {
  %y = quant.qmatmul #quant.encoding<q4_k> %x, %w : (tensor<?x512xf32>, tensor<?x288xui8>) -> tensor<?x?xf32>
  func.return %y : tensor<?x?xf32>
}

// CHECK:       .visible .entry mv_kernel0(
// CHECK-DAG:     ld.global.nc.v4.b32
// CHECK-DAG:     fma.rn.f32
// CHECK-DAG:     shfl.sync.bfly.b32
// CHECK:       .visible .entry gptq_kernel1(

// -----

// GPTQ qmatmul: consecutive threads take consecutive columns (coalesced
// qweight loads), x is read 16 bytes at a time, codes become floats through
// the 2^23 trick (no cvt), and the groups are split across threads (split-K,
// so that M = 1 fills the GPU); kernel1 sums the splits.
func.func @gptq(%x: tensor<?x4096xf32>, %qw: tensor<512x?xi32>, %qz: tensor<32x?xi32>, %s: tensor<32x?xf16>, %g: tensor<4096xi32>) -> tensor<?x?xf32> {
  %y = quant.qmatmul #quant.encoding<gptq> config #quant.gptq<bits = 4, group_size = 128, desc_act = false, sym = false, format = gptq> %x, %qw, %qz, %s, %g : (tensor<?x4096xf32>, tensor<512x?xi32>, tensor<32x?xi32>, tensor<32x?xf16>, tensor<4096xi32>) -> tensor<?x?xf32>
  func.return %y : tensor<?x?xf32>
}

// CHECK:         add.f32
// CHECK:         ret;
// CHECK:       .visible .entry gptq_kernel0(
// CHECK:         %tid.x
// CHECK:         ld.global.nc.v4.b32
// CHECK-NOT:     cvt.rn.f32.u32
// CHECK:         or.b32 {{.*}}1258291200
// CHECK:         fma.rn.f32
// CHECK-NOT:     shfl.sync
// CHECK:         ret;

// -----

// With act-order (desc_act), each thread of the column's warp takes every
// 32nd k (through g_idx) and the warp sums them.
func.func @gptq_act_order(%x: tensor<?x4096xf32>, %qw: tensor<512x?xi32>, %qz: tensor<32x?xi32>, %s: tensor<32x?xf16>, %g: tensor<4096xi32>) -> tensor<?x?xf32> {
  %y = quant.qmatmul #quant.encoding<gptq> config #quant.gptq<bits = 4, group_size = 128, desc_act = true, sym = false, format = gptq> %x, %qw, %qz, %s, %g : (tensor<?x4096xf32>, tensor<512x?xi32>, tensor<32x?xi32>, tensor<32x?xf16>, tensor<4096xi32>) -> tensor<?x?xf32>
  func.return %y : tensor<?x?xf32>
}

// CHECK:       .visible .entry gptq_act_order_kernel1(
// CHECK:         shfl.sync.bfly.b32
// CHECK:         ret;
