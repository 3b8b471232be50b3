// RUN: quantir-opt %s --split-input-file -p gpu-map-kernels | filecheck %s

// "item": one thread per iteration of the whole nest; the launch covers
// rows times the inner extent, in blocks of 256 threads.
builtin.module {
  func.func @f(%x: memref<?x8xf32>) {
    %c0 = arith.constant 0 : index
    %n = memref.dim %x, %c0 : memref<?x8xf32>
    qrt.launch @f_kernel0(%x) range(%n) : memref<?x8xf32>
    func.return
  }
  func.func @f_kernel0(%lo: index, %hi: index, %x: memref<?x8xf32>) attributes {qrt.kernel} {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c8 = arith.constant 8 : index
    %one = arith.constant 1.0 : f32
    "scf.parallel"(%lo, %c0, %hi, %c8, %c1, %c1) <{operandSegmentSizes = array<i32: 2, 2, 2, 0>}> ({
    ^bb0(%i: index, %j: index):
      memref.store %one, %x[%i, %j] : memref<?x8xf32>
      scf.reduce
    }) : (index, index, index, index, index, index) -> ()
    func.return
  }
}

// CHECK-LABEL: func.func @f(
// CHECK:         [[T:%.*]] = arith.muli %{{.*}}, %{{.*}} : index
// CHECK:         qrt.launch @f_kernel0(%x) range(%{{.*}}) {threads_per_block = 256 : i64, items_per_block = 256 : i64}
// CHECK-LABEL: func.func @f_kernel0(
// CHECK:         gpu.thread_id
// CHECK:         gpu.block_id
// CHECK:         gpu.block_dim
// CHECK:         [[OK:%.*]] = arith.cmpi ult, %{{.*}}, %hi : index
// CHECK:         scf.if [[OK]] {
// CHECK:           arith.remui
// CHECK:           arith.divui
// CHECK:           memref.store
// CHECK-NOT:     scf.parallel

// -----

// "warp": one warp per row; the reduction loop is split across the 32
// threads and the partial sums are added with a warp reduce.
builtin.module {
  func.func @g(%x: memref<?x64xf32>, %y: memref<?xf32>) {
    %c0 = arith.constant 0 : index
    %n = memref.dim %x, %c0 : memref<?x64xf32>
    qrt.launch @g_kernel0(%x, %y) range(%n) : memref<?x64xf32>, memref<?xf32>
    func.return
  }
  func.func @g_kernel0(%lo: index, %hi: index, %x: memref<?x64xf32>, %y: memref<?xf32>) attributes {qrt.kernel} {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c64 = arith.constant 64 : index
    %zero = arith.constant 0.0 : f32
    "scf.parallel"(%lo, %hi, %c1) <{operandSegmentSizes = array<i32: 1, 1, 1, 0>}> ({
    ^bb0(%i: index):
      %s = scf.for %k = %c0 to %c64 step %c1 iter_args(%acc = %zero) -> (f32) {
        %v = memref.load %x[%i, %k] : memref<?x64xf32>
        %a = arith.addf %acc, %v : f32
        scf.yield %a : f32
      } {qrt.loop = "reduction"}
      memref.store %s, %y[%i] : memref<?xf32>
      scf.reduce
    }) {qrt.gpu_mapping = "warp"} : (index, index, index) -> ()
    func.return
  }
}

// CHECK-LABEL: func.func @g(
// CHECK:         [[T:%.*]] = arith.muli %{{.*}}, %{{.*}} : index
// CHECK:         qrt.launch @g_kernel0(%x, %y) range([[T]]) {threads_per_block = 256 : i64, items_per_block = 256 : i64}
// CHECK-LABEL: func.func @g_kernel0(
// CHECK:         scf.if
// CHECK:           [[LANE:%.*]] = arith.remui %{{.*}}, %{{.*}} : index
// CHECK:           [[START:%.*]] = arith.addi %{{.*}}, %{{.*}} : index
// CHECK:           [[STEP:%.*]] = arith.muli %{{.*}}, %{{.*}} : index
// CHECK:           [[S:%.*]] = scf.for %{{.*}} = [[START]] to %{{.*}} step [[STEP]] iter_args
// CHECK:           [[SUM:%.*]] = qrt.warp_reduce [[S]] : f32
// CHECK:           memref.store [[SUM]], %y[%{{.*}}]
