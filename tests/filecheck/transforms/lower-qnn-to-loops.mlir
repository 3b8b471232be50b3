// RUN: quantir-opt %s --split-input-file -p lower-qnn-to-loops | filecheck %s
// RUN: quantir-opt %s --split-input-file -p "lower-qnn-to-loops{vectorize=false}" | filecheck %s --check-prefix=SCALAR

// Elementwise add with a broadcast bias: vectors of 16 along the last
// dimension, then a scalar tail.
func.func @add_bias(%a: memref<?x40xf32>, %b: memref<40xf32>, %c: memref<?x40xf32>) {
  qnn.add %a, %b outs(%c) : (memref<?x40xf32>, memref<40xf32>, memref<?x40xf32>) -> ()
  func.return
}

// CHECK-LABEL: func.func @add_bias(
// CHECK:         "scf.parallel"
// CHECK:           scf.for
// CHECK:             vector.load %a[%{{.*}}, %{{.*}}] : memref<?x40xf32>, vector<16xf32>
// CHECK:             vector.load %b[%{{.*}}] : memref<40xf32>, vector<16xf32>
// CHECK:             arith.addf %{{.*}}, %{{.*}} : vector<16xf32>
// CHECK:             vector.store
// CHECK:           scf.for
// CHECK:             memref.load %a
// CHECK:             arith.addf %{{.*}}, %{{.*}} : f32
// CHECK:         }) {qrt.loop = "rows"}

// SCALAR-LABEL: func.func @add_bias(
// SCALAR-NOT:     vector
// SCALAR:         arith.addf %{{.*}}, %{{.*}} : f32

// -----

// A size-1 dimension broadcasts: it is read at index 0.
func.func @mul_broadcast(%a: memref<4x8xf32>, %b: memref<4x1xf32>, %c: memref<4x8xf32>) {
  qnn.mul %a, %b outs(%c) : (memref<4x8xf32>, memref<4x1xf32>, memref<4x8xf32>) -> ()
  func.return
}

// CHECK-LABEL: func.func @mul_broadcast(
// CHECK:         [[S:%.*]] = memref.load %b[%{{.*}}, %{{.*}}] : memref<4x1xf32>
// CHECK:         vector.broadcast [[S]] : f32 to vector<16xf32>

// -----

// Float matmul: tiles of 16 output columns accumulate rows of w with FMAs;
// a partial last tile is computed one column at a time.
func.func @matmul(%x: memref<?x64xf32>, %w: memref<64x40xf32>, %y: memref<?x40xf32>) {
  qnn.matmul %x, %w outs(%y) : (memref<?x64xf32>, memref<64x40xf32>, memref<?x40xf32>) -> ()
  func.return
}

// CHECK-LABEL: func.func @matmul(
// CHECK:         "scf.parallel"
// CHECK:           scf.if
// CHECK:             scf.for {{.*}} iter_args({{.*}}) -> (vector<16xf32>)
// CHECK:               vector.fma
// CHECK:             } {qrt.loop = "reduction"}
// CHECK:           scf.if
// CHECK:             scf.for {{.*}} iter_args({{.*}}) -> (f32)

// SCALAR-LABEL: func.func @matmul(
// SCALAR:         "scf.parallel"(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}})
// SCALAR:           scf.for {{.*}} iter_args({{.*}}) -> (f32)
