// RUN: quantir-opt %s --split-input-file -p hoist-loop-constants | filecheck %s

// The constants of a nest of scf.for leave it at once, where canonicalize's
// sweeps would leave them: before the outermost loop, the outer loop's own
// first, then one level deeper, each level in body order. Other ops stay.
func.func @nest(%x: memref<?x64xf32>, %n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  scf.for %i = %c0 to %n step %c1 {
    %c4 = arith.constant 4 : index
    scf.for %j = %c0 to %c4 step %c1 {
      %c16 = arith.constant 16 : index
      %two = arith.constant 2.0 : f32
      %k = arith.muli %j, %c16 : index
      %v = memref.load %x[%i, %k] : memref<?x64xf32>
      %w = arith.mulf %v, %two : f32
      memref.store %w, %x[%i, %k] : memref<?x64xf32>
    }
    %c8 = arith.constant 8 : index
    scf.for %j = %c0 to %c8 step %c1 {
      %three = arith.constant 3.0 : f32
      %v = memref.load %x[%i, %j] : memref<?x64xf32>
      %w = arith.mulf %v, %three : f32
      memref.store %w, %x[%i, %j] : memref<?x64xf32>
    }
  }
  func.return
}

// CHECK-LABEL: func.func @nest(
// CHECK-NEXT:    %c0 = arith.constant 0 : index
// CHECK-NEXT:    %c1 = arith.constant 1 : index
// CHECK-NEXT:    %c4 = arith.constant 4 : index
// CHECK-NEXT:    %c8 = arith.constant 8 : index
// CHECK-NEXT:    %c16 = arith.constant 16 : index
// CHECK-NEXT:    %two = arith.constant 2.000000e+00 : f32
// CHECK-NEXT:    %three = arith.constant 3.000000e+00 : f32
// CHECK-NEXT:    scf.for %i = %c0 to %n step %c1 {
// CHECK-NEXT:      scf.for %j = %c0 to %c4 step %c1 {
// CHECK-NEXT:        %k = arith.muli %j, %c16 : index
// CHECK:           scf.for %j_1 = %c0 to %c8 step %c1 {
// CHECK-NEXT:        %v_1 = memref.load

// -----

// A loop inside another region (an scf.parallel body, an scf.if) keeps its
// constants in that region: they leave the loop, not the region.
func.func @in_parallel(%x: memref<?x64xf32>, %n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  "scf.parallel"(%c0, %n, %c1) <{operandSegmentSizes = array<i32: 1, 1, 1, 0>}> ({
  ^bb0(%i: index):
    %c64 = arith.constant 64 : index
    scf.for %j = %c0 to %c64 step %c1 {
      %two = arith.constant 2.0 : f32
      memref.store %two, %x[%i, %j] : memref<?x64xf32>
    }
    scf.reduce
  }) : (index, index, index) -> ()
  func.return
}

// CHECK-LABEL: func.func @in_parallel(
// CHECK:         ^bb0(%i: index):
// CHECK-NEXT:      %c64 = arith.constant 64 : index
// CHECK-NEXT:      %two = arith.constant 2.000000e+00 : f32
// CHECK-NEXT:      scf.for %j = %c0 to %c64 step %c1 {
// CHECK-NEXT:        memref.store %two, %x[%i, %j]
