// RUN: quantir-opt %s --split-input-file -p outline-kernels | filecheck %s

// Each top-level scf.parallel becomes a kernel taking its [lo, hi) slice of
// dimension 0 and the host values it uses; constants are re-created inside.
func.func @scale(%x: memref<?x8xf32>, %y: memref<?x8xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %n = memref.dim %x, %c0 : memref<?x8xf32>
  %two = arith.constant 2.0 : f32
  // (xDSL prints scf.parallel in generic form only.)
  "scf.parallel"(%c0, %c0, %n, %c8, %c1, %c1) <{operandSegmentSizes = array<i32: 2, 2, 2, 0>}> ({
  ^bb0(%i: index, %j: index):
    %v = memref.load %x[%i, %j] : memref<?x8xf32>
    %w = arith.mulf %v, %two : f32
    memref.store %w, %y[%i, %j] : memref<?x8xf32>
    scf.reduce
  }) : (index, index, index, index, index, index) -> ()
  func.return
}

// CHECK-LABEL: func.func @scale(
// CHECK:         [[N:%.*]] = memref.dim %x
// CHECK-NEXT:    %two = arith.constant 2.000000e+00 : f32
// CHECK-NEXT:    qrt.launch @scale_kernel0(%x, %y) range([[N]]) : memref<?x8xf32>, memref<?x8xf32>
// CHECK-NEXT:    func.return
// CHECK:       func.func @scale_kernel0(%lo: index, %hi: index, %x: memref<?x8xf32>, %y: memref<?x8xf32>) attributes {qrt.kernel} {
// CHECK-DAG:     %{{.*}} = arith.constant 2.000000e+00 : f32
// CHECK:         "scf.parallel"(%lo, %{{.*}}, %hi, %{{.*}}, %{{.*}}, %{{.*}})

// -----

// Regression: the launch range is the same SSA value as the steps (all the
// constant 1): the steps must still reach the kernel.
func.func @unit_range(%x: memref<1x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %n = memref.dim %x, %c1 : memref<1x?xf32>
  %v = arith.constant 3.0 : f32
  "scf.parallel"(%c0, %c0, %c1, %n, %c1, %c1) <{operandSegmentSizes = array<i32: 2, 2, 2, 0>}> ({
  ^bb0(%i: index, %j: index):
    memref.store %v, %x[%i, %j] : memref<1x?xf32>
    scf.reduce
  }) : (index, index, index, index, index, index) -> ()
  func.return
}

// CHECK-LABEL: func.func @unit_range(
// CHECK:         qrt.launch @unit_range_kernel0(%n, %x) range(%c1)
// CHECK:       func.func @unit_range_kernel0(%lo: index, %hi: index, %n: index, %x: memref<1x?xf32>)
// CHECK-DAG:     [[ONE:%.*]] = arith.constant 1 : index
// CHECK:         "scf.parallel"(%lo, %{{.*}}, %hi, %n, [[ONE]], [[ONE]])

// -----

// Nests that differ only in the buffers they touch share one kernel: the
// second launch reuses @twice_kernel0; a nest with another constant gets its own.
func.func @twice(%a: memref<?x8xf32>, %b: memref<?x8xf32>, %c: memref<?x8xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %n = memref.dim %a, %c0 : memref<?x8xf32>
  %two = arith.constant 2.0 : f32
  %three = arith.constant 3.0 : f32
  "scf.parallel"(%c0, %c0, %n, %c8, %c1, %c1) <{operandSegmentSizes = array<i32: 2, 2, 2, 0>}> ({
  ^bb0(%i: index, %j: index):
    %v = memref.load %a[%i, %j] : memref<?x8xf32>
    %w = arith.mulf %v, %two : f32
    memref.store %w, %b[%i, %j] : memref<?x8xf32>
    scf.reduce
  }) : (index, index, index, index, index, index) -> ()
  "scf.parallel"(%c0, %c0, %n, %c8, %c1, %c1) <{operandSegmentSizes = array<i32: 2, 2, 2, 0>}> ({
  ^bb0(%i: index, %j: index):
    %v = memref.load %b[%i, %j] : memref<?x8xf32>
    %w = arith.mulf %v, %two : f32
    memref.store %w, %c[%i, %j] : memref<?x8xf32>
    scf.reduce
  }) : (index, index, index, index, index, index) -> ()
  "scf.parallel"(%c0, %c0, %n, %c8, %c1, %c1) <{operandSegmentSizes = array<i32: 2, 2, 2, 0>}> ({
  ^bb0(%i: index, %j: index):
    %v = memref.load %c[%i, %j] : memref<?x8xf32>
    %w = arith.mulf %v, %three : f32
    memref.store %w, %a[%i, %j] : memref<?x8xf32>
    scf.reduce
  }) : (index, index, index, index, index, index) -> ()
  func.return
}

// CHECK-LABEL: func.func @twice(
// CHECK:         qrt.launch @twice_kernel0(%a, %b) range(%n)
// CHECK-NEXT:    qrt.launch @twice_kernel0(%b, %c) range(%n)
// CHECK-NEXT:    qrt.launch @twice_kernel1(%c, %a) range(%n)
// CHECK-NEXT:    func.return
// CHECK:       func.func @twice_kernel1(
// CHECK:         arith.constant 3.000000e+00 : f32
// CHECK:       func.func @twice_kernel0(
// CHECK:         arith.constant 2.000000e+00 : f32
// CHECK-NOT:   func.func @twice_kernel2
