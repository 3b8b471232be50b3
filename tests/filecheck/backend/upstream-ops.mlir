// RUN: quantir-opt %s --split-input-file -t llvm | filecheck %s

// The LLVM translation reads the upstream ops the pipelines end with.
// memref.prefetch: llvm.prefetch of an address that may lie past the end
// (no inbounds), read, high locality, data cache.
func.func @prefetch(%w: memref<?x144xi8>, %i: index) {
  memref.prefetch %w[%i, %i], read, locality<3>, data : memref<?x144xi8>
  func.return
}

// CHECK-LABEL: define void @"prefetch"(
// CHECK-NOT:     getelementptr inbounds
// CHECK:         call void @"llvm.prefetch.p0"(ptr %{{.*}}, i32 0, i32 3, i32 1)

// -----

// The upstream form of qrt.dot_u8i8 (convert-qrt-to-upstream), marked:
// translated as one dot with the host's instructions (vpdpbusd with VNNI,
// vpmaddubsw + vpmaddwd on AVX2); none of the widening arithmetic is emitted.
func.func @dot(%bytes: memref<64xi8>, %out: memref<8xi32>) {
  %c0 = arith.constant 0 : index
  %c32 = arith.constant 32 : index
  %acc = vector.load %out[%c0] : memref<8xi32>, vector<8xi32>
  %c = vector.load %bytes[%c0] : memref<64xi8>, vector<32xi8>
  %v = vector.load %bytes[%c32] : memref<64xi8>, vector<32xi8>
  %cw = arith.extui %c : vector<32xi8> to vector<32xi32>
  %vw = arith.extsi %v : vector<32xi8> to vector<32xi32>
  %p = arith.muli %cw, %vw : vector<32xi32>
  %p0 = vector.shuffle %p, %p [0, 4, 8, 12, 16, 20, 24, 28] : vector<32xi32>, vector<32xi32>
  %a0 = arith.addi %acc, %p0 : vector<8xi32>
  %p1 = vector.shuffle %p, %p [1, 5, 9, 13, 17, 21, 25, 29] : vector<32xi32>, vector<32xi32>
  %a1 = arith.addi %a0, %p1 : vector<8xi32>
  %p2 = vector.shuffle %p, %p [2, 6, 10, 14, 18, 22, 26, 30] : vector<32xi32>, vector<32xi32>
  %a2 = arith.addi %a1, %p2 : vector<8xi32>
  %p3 = vector.shuffle %p, %p [3, 7, 11, 15, 19, 23, 27, 31] : vector<32xi32>, vector<32xi32>
  %d = arith.addi %a2, %p3 {qrt.dot_u8i8 = {code_bits = 4 : i64}} : vector<8xi32>
  vector.store %d, %out[%c0] : memref<8xi32>, vector<8xi32>
  func.return
}

// CHECK-LABEL: define void @"dot"(
// CHECK-NOT:     zext <32 x i8>
// CHECK-NOT:     mul <32 x i32>
// CHECK:         call <{{8 x i32|16 x i16}}> @"llvm.x86.{{avx512.vpdpbusd.256|avx2.pmadd.ub.sw}}"
// CHECK-NOT:     shufflevector
// CHECK:         ret void

// -----

// Without the mark (or when the group is not the exact shape), the same ops
// translate one by one: the same integers, widening arithmetic.
func.func @plain(%bytes: memref<64xi8>, %out: memref<8xi32>) {
  %c0 = arith.constant 0 : index
  %c32 = arith.constant 32 : index
  %acc = vector.load %out[%c0] : memref<8xi32>, vector<8xi32>
  %c = vector.load %bytes[%c0] : memref<64xi8>, vector<32xi8>
  %v = vector.load %bytes[%c32] : memref<64xi8>, vector<32xi8>
  %cw = arith.extui %c : vector<32xi8> to vector<32xi32>
  %vw = arith.extsi %v : vector<32xi8> to vector<32xi32>
  %p = arith.muli %cw, %vw : vector<32xi32>
  %p0 = vector.shuffle %p, %p [0, 4, 8, 12, 16, 20, 24, 28] : vector<32xi32>, vector<32xi32>
  %d = arith.addi %acc, %p0 {qrt.dot_u8i8 = {code_bits = 4 : i64}} : vector<8xi32>
  vector.store %d, %out[%c0] : memref<8xi32>, vector<8xi32>
  func.return
}

// CHECK-LABEL: define void @"plain"(
// CHECK:         zext <32 x i8> %{{.*}} to <32 x i32>
// CHECK:         sext <32 x i8> %{{.*}} to <32 x i32>
// CHECK:         mul <32 x i32>
// CHECK:         shufflevector <32 x i32>
// CHECK:         add <8 x i32>
// CHECK-NOT:     llvm.x86

// -----

// The upstream form of qrt.dot_u8i8_scaled (a dot from zero, times the
// sign-extended scales, added to the accumulator), marked: vpmaddubsw, then
// vpdpwssd with VNNI or vpmaddwd on AVX2; none of the widening arithmetic.
func.func @scaled(%bytes: memref<64xi8>, %sc: memref<8xi16>, %out: memref<8xi32>) {
  %c0 = arith.constant 0 : index
  %c32 = arith.constant 32 : index
  %acc = vector.load %out[%c0] : memref<8xi32>, vector<8xi32>
  %c = vector.load %bytes[%c0] : memref<64xi8>, vector<32xi8>
  %v = vector.load %bytes[%c32] : memref<64xi8>, vector<32xi8>
  %s = vector.load %sc[%c0] : memref<8xi16>, vector<8xi16>
  %d = arith.constant dense<0> : vector<8xi32>
  %d_1 = arith.extui %c : vector<32xi8> to vector<32xi32>
  %d_2 = arith.extsi %v : vector<32xi8> to vector<32xi32>
  %d_3 = arith.muli %d_1, %d_2 : vector<32xi32>
  %d_4 = vector.shuffle %d_3, %d_3 [0, 4, 8, 12, 16, 20, 24, 28] : vector<32xi32>, vector<32xi32>
  %d_5 = arith.addi %d, %d_4 : vector<8xi32>
  %d_6 = vector.shuffle %d_3, %d_3 [1, 5, 9, 13, 17, 21, 25, 29] : vector<32xi32>, vector<32xi32>
  %d_7 = arith.addi %d_5, %d_6 : vector<8xi32>
  %d_8 = vector.shuffle %d_3, %d_3 [2, 6, 10, 14, 18, 22, 26, 30] : vector<32xi32>, vector<32xi32>
  %d_9 = arith.addi %d_7, %d_8 : vector<8xi32>
  %d_10 = vector.shuffle %d_3, %d_3 [3, 7, 11, 15, 19, 23, 27, 31] : vector<32xi32>, vector<32xi32>
  %d_11 = arith.addi %d_9, %d_10 {qrt.dot_u8i8 = {code_bits = 3 : i64}} : vector<8xi32>
  %d_12 = arith.extsi %s : vector<8xi16> to vector<8xi32>
  %d_13 = arith.muli %d_11, %d_12 : vector<8xi32>
  %d_14 = arith.addi %acc, %d_13 {qrt.dot_u8i8_scaled = {code_bits = 3 : i64}} : vector<8xi32>
  vector.store %d_14, %out[%c0] : memref<8xi32>, vector<8xi32>
  func.return
}

// CHECK-LABEL: define void @"scaled"(
// CHECK-NOT:     zext <32 x i8>
// CHECK-NOT:     mul <8 x i32>
// CHECK:         call <16 x i16> @"llvm.x86.avx2.pmadd.ub.sw"(<32 x i8> %{{.*}}, <32 x i8> %{{.*}})
// CHECK:         call <8 x i32> @"llvm.x86.{{avx512.vpdpwssd.256|avx2.pmadd.wd}}"
// CHECK-NOT:     mul <8 x i32>
// CHECK:         ret void

// -----

// gpu.subgroup_reduce add (what qrt.warp_reduce becomes) on NVPTX: a
// butterfly of five full-warp shuffles.
builtin.module attributes {qrt.target = "nvptx"} {
  func.func @warp(%x: memref<32xf32>, %i: index) {
    %v = memref.load %x[%i] : memref<32xf32>
    %s = gpu.subgroup_reduce add %v uniform : (f32) -> f32
    memref.store %s, %x[%i] : memref<32xf32>
    func.return
  }
}

// CHECK-LABEL: define void @"warp"(
// CHECK:         call float @"llvm.nvvm.shfl.sync.bfly.f32"(i32 -1, float %{{.*}}, i32 16, i32 31)
// CHECK:         call float @"llvm.nvvm.shfl.sync.bfly.f32"(i32 -1, float %{{.*}}, i32 8, i32 31)
// CHECK:         call float @"llvm.nvvm.shfl.sync.bfly.f32"(i32 -1, float %{{.*}}, i32 4, i32 31)
// CHECK:         call float @"llvm.nvvm.shfl.sync.bfly.f32"(i32 -1, float %{{.*}}, i32 2, i32 31)
// CHECK:         call float @"llvm.nvvm.shfl.sync.bfly.f32"(i32 -1, float %{{.*}}, i32 1, i32 31)
