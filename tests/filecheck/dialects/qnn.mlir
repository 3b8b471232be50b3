// Round trips of the qnn dialect: pretty form, pretty -> pretty, and generic -> pretty.
// RUN: quantir-opt --split-input-file %s | filecheck %s
// RUN: quantir-opt --split-input-file %s | quantir-opt --split-input-file | filecheck %s
// RUN: quantir-opt --split-input-file --print-op-generic %s | quantir-opt --split-input-file | filecheck %s
// RUN: quantir-opt --split-input-file --print-op-generic %s | filecheck %s --check-prefix=GENERIC

// The example of the dialect's documentation.
// CHECK-LABEL: func.func @doc_example
// CHECK:         %h = qnn.matmul %x, %w : (tensor<?x4096xf32>, tensor<4096x1024xf32>) -> tensor<?x1024xf32>
// CHECK-NEXT:    %y = qnn.add %h, %bias : (tensor<?x1024xf32>, tensor<1024xf32>) -> tensor<?x1024xf32>
// GENERIC-LABEL: "func.func"() <{sym_name = "doc_example"
// GENERIC:         %h = "qnn.matmul"(%x, %w) : (tensor<?x4096xf32>, tensor<4096x1024xf32>) -> tensor<?x1024xf32>
// GENERIC-NEXT:    %y = "qnn.add"(%h, %bias) : (tensor<?x1024xf32>, tensor<1024xf32>) -> tensor<?x1024xf32>
func.func @doc_example(%x: tensor<?x4096xf32>, %w: tensor<4096x1024xf32>, %bias: tensor<1024xf32>) -> tensor<?x1024xf32> {
  %h = qnn.matmul %x, %w : (tensor<?x4096xf32>, tensor<4096x1024xf32>) -> tensor<?x1024xf32>
  %y = qnn.add %h, %bias : (tensor<?x1024xf32>, tensor<1024xf32>) -> tensor<?x1024xf32>
  func.return %y : tensor<?x1024xf32>
}

// -----

// x of rank 1, 2 and 3; static and dynamic leading dimensions and N.
// CHECK-LABEL: func.func @matmul_ranks
// CHECK:         %y1 = qnn.matmul %x1, %w : (tensor<64xf32>, tensor<64x16xf32>) -> tensor<16xf32>
// CHECK-NEXT:    %y2 = qnn.matmul %x2, %w : (tensor<5x64xf32>, tensor<64x16xf32>) -> tensor<5x16xf32>
// CHECK-NEXT:    %y3 = qnn.matmul %x3, %w : (tensor<2x?x64xf32>, tensor<64x16xf32>) -> tensor<2x?x16xf32>
// CHECK-NEXT:    %y4 = qnn.matmul %x2, %v : (tensor<5x64xf32>, tensor<64x?xf32>) -> tensor<5x?xf32>
func.func @matmul_ranks(%x1: tensor<64xf32>, %x2: tensor<5x64xf32>, %x3: tensor<2x?x64xf32>, %w: tensor<64x16xf32>, %v: tensor<64x?xf32>) {
  %y1 = qnn.matmul %x1, %w : (tensor<64xf32>, tensor<64x16xf32>) -> tensor<16xf32>
  %y2 = qnn.matmul %x2, %w : (tensor<5x64xf32>, tensor<64x16xf32>) -> tensor<5x16xf32>
  %y3 = qnn.matmul %x3, %w : (tensor<2x?x64xf32>, tensor<64x16xf32>) -> tensor<2x?x16xf32>
  %y4 = qnn.matmul %x2, %v : (tensor<5x64xf32>, tensor<64x?xf32>) -> tensor<5x?xf32>
  func.return
}

// -----

// Elementwise ops: equal shapes, a lower-rank operand matching the trailing
// dimensions (either side), size-1 dimensions, dynamic dimensions.
// CHECK-LABEL: func.func @elementwise_broadcast
// CHECK:         %s = qnn.add %a, %a : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
// CHECK-NEXT:    %t = qnn.add %b, %a : (tensor<8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
// CHECK-NEXT:    %u = qnn.mul %a, %one : (tensor<4x8xf32>, tensor<1xf32>) -> tensor<4x8xf32>
// CHECK-NEXT:    %v = qnn.mul %a, %col : (tensor<4x8xf32>, tensor<4x1xf32>) -> tensor<4x8xf32>
// CHECK-NEXT:    %w = qnn.mul %col, %a : (tensor<4x1xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
// CHECK-NEXT:    %x = qnn.add %d, %b : (tensor<?x8xf32>, tensor<8xf32>) -> tensor<?x8xf32>
// CHECK-NEXT:    %y = qnn.mul %d, %d : (tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x8xf32>
// CHECK-NEXT:    %z = qnn.add %r3, %b : (tensor<2x?x8xf32>, tensor<8xf32>) -> tensor<2x?x8xf32>
func.func @elementwise_broadcast(%a: tensor<4x8xf32>, %b: tensor<8xf32>, %one: tensor<1xf32>, %col: tensor<4x1xf32>, %d: tensor<?x8xf32>, %r3: tensor<2x?x8xf32>) {
  %s = qnn.add %a, %a : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  %t = qnn.add %b, %a : (tensor<8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  %u = qnn.mul %a, %one : (tensor<4x8xf32>, tensor<1xf32>) -> tensor<4x8xf32>
  %v = qnn.mul %a, %col : (tensor<4x8xf32>, tensor<4x1xf32>) -> tensor<4x8xf32>
  %w = qnn.mul %col, %a : (tensor<4x1xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  %x = qnn.add %d, %b : (tensor<?x8xf32>, tensor<8xf32>) -> tensor<?x8xf32>
  %y = qnn.mul %d, %d : (tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x8xf32>
  %z = qnn.add %r3, %b : (tensor<2x?x8xf32>, tensor<8xf32>) -> tensor<2x?x8xf32>
  func.return
}

// -----

// The destination-passing form on memrefs, and discardable attributes.
// CHECK-LABEL: func.func @outs_form
// CHECK:         qnn.matmul %x, %w outs(%y) : (memref<?x64xf32>, memref<64x16xf32>, memref<?x16xf32>) -> ()
// CHECK-NEXT:    qnn.add %y, %b outs(%y) : (memref<?x16xf32>, memref<16xf32>, memref<?x16xf32>) -> ()
// CHECK-NEXT:    qnn.mul %y, %y outs(%y) {tag = "square"} : (memref<?x16xf32>, memref<?x16xf32>, memref<?x16xf32>) -> ()
// CHECK-NEXT:    %t = qnn.add %tx, %tx {tag = "twice"} : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
// GENERIC-LABEL: "func.func"() <{sym_name = "outs_form"
// GENERIC:         "qnn.matmul"(%x, %w, %y) : (memref<?x64xf32>, memref<64x16xf32>, memref<?x16xf32>) -> ()
func.func @outs_form(%x: memref<?x64xf32>, %w: memref<64x16xf32>, %y: memref<?x16xf32>, %b: memref<16xf32>, %tx: tensor<3xf32>) {
  qnn.matmul %x, %w outs(%y) : (memref<?x64xf32>, memref<64x16xf32>, memref<?x16xf32>) -> ()
  qnn.add %y, %b outs(%y) : (memref<?x16xf32>, memref<16xf32>, memref<?x16xf32>) -> ()
  qnn.mul %y, %y outs(%y) {tag = "square"} : (memref<?x16xf32>, memref<?x16xf32>, memref<?x16xf32>) -> ()
  %t = qnn.add %tx, %tx {tag = "twice"} : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
  func.return
}
