// quantir's arith casts accept vectors (elementwise) as well as scalars, with
// MLIR's syntax; the rest of arith is xDSL's.
// RUN: quantir-opt --split-input-file %s | filecheck %s
// RUN: quantir-opt --split-input-file %s | quantir-opt --split-input-file | filecheck %s
// RUN: quantir-opt --split-input-file --print-op-generic %s | quantir-opt --split-input-file | filecheck %s
// RUN: quantir-opt --split-input-file --print-op-generic %s | filecheck %s --check-prefix=GENERIC

// Every cast on vectors: the block-unpacking chain i8 -> i32 -> f32 and back.
// CHECK-LABEL: func.func @vector_casts
// CHECK:         %u = arith.extui %b : vector<32xi8> to vector<32xi32>
// CHECK-NEXT:    %s = arith.extsi %b : vector<32xi8> to vector<32xi32>
// CHECK-NEXT:    %t = arith.trunci %u : vector<32xi32> to vector<32xi8>
// CHECK-NEXT:    %f = arith.uitofp %u : vector<32xi32> to vector<32xf32>
// CHECK-NEXT:    %g = arith.sitofp %s : vector<32xi32> to vector<32xf32>
// CHECK-NEXT:    %h = arith.fptosi %f : vector<32xf32> to vector<32xi32>
// CHECK-NEXT:    %k = arith.fptoui %f : vector<32xf32> to vector<32xi16>
// CHECK-NEXT:    %m = arith.extui %b2 : vector<4x8xi8> to vector<4x8xi64>
// CHECK-NEXT:    %n = arith.uitofp %b2 : vector<4x8xi8> to vector<4x8xf16>
// GENERIC-LABEL: "func.func"() <{sym_name = "vector_casts"
// GENERIC:         %u = "arith.extui"(%b) : (vector<32xi8>) -> vector<32xi32>
// GENERIC:         %f = "arith.uitofp"(%u) : (vector<32xi32>) -> vector<32xf32>
func.func @vector_casts(%b: vector<32xi8>, %b2: vector<4x8xi8>) {
  %u = arith.extui %b : vector<32xi8> to vector<32xi32>
  %s = arith.extsi %b : vector<32xi8> to vector<32xi32>
  %t = arith.trunci %u : vector<32xi32> to vector<32xi8>
  %f = arith.uitofp %u : vector<32xi32> to vector<32xf32>
  %g = arith.sitofp %s : vector<32xi32> to vector<32xf32>
  %h = arith.fptosi %f : vector<32xf32> to vector<32xi32>
  %k = arith.fptoui %f : vector<32xf32> to vector<32xi16>
  %m = arith.extui %b2 : vector<4x8xi8> to vector<4x8xi64>
  %n = arith.uitofp %b2 : vector<4x8xi8> to vector<4x8xf16>
  func.return
}

// -----

// The same casts on scalars, as in xDSL's arith.
// CHECK-LABEL: func.func @scalar_casts
// CHECK:         %u = arith.extui %b : i8 to i32
// CHECK-NEXT:    %s = arith.extsi %b : i8 to i32
// CHECK-NEXT:    %t = arith.trunci %u : i32 to i1
// CHECK-NEXT:    %f = arith.uitofp %u : i32 to f32
// CHECK-NEXT:    %g = arith.sitofp %s : i32 to f64
// CHECK-NEXT:    %h = arith.fptosi %f : f32 to i32
// CHECK-NEXT:    %k = arith.fptoui %f : f32 to i8
// CHECK-NEXT:    %w = arith.extui %b {tag} : i8 to i16
func.func @scalar_casts(%b: i8) {
  %u = arith.extui %b : i8 to i32
  %s = arith.extsi %b : i8 to i32
  %t = arith.trunci %u : i32 to i1
  %f = arith.uitofp %u : i32 to f32
  %g = arith.sitofp %s : i32 to f64
  %h = arith.fptosi %f : f32 to i32
  %k = arith.fptoui %f : f32 to i8
  %w = arith.extui %b {tag} : i8 to i16
  func.return
}

// -----

// The rest of arith is unchanged: vector arithmetic, constants, comparisons.
// CHECK-LABEL: func.func @other_arith_ops
// CHECK:         %c = arith.constant dense<15> : vector<32xi32>
// CHECK-NEXT:    %a = arith.andi %x, %c : vector<32xi32>
// CHECK-NEXT:    %sh = arith.shrui %x, %c : vector<32xi32>
// CHECK-NEXT:    %f = arith.uitofp %a : vector<32xi32> to vector<32xf32>
// CHECK-NEXT:    %p = arith.mulf %f, %f : vector<32xf32>
// CHECK-NEXT:    %q = arith.cmpi ult, %a, %c : vector<32xi32>
func.func @other_arith_ops(%x: vector<32xi32>) {
  %c = arith.constant dense<15> : vector<32xi32>
  %a = arith.andi %x, %c : vector<32xi32>
  %sh = arith.shrui %x, %c : vector<32xi32>
  %f = arith.uitofp %a : vector<32xi32> to vector<32xf32>
  %p = arith.mulf %f, %f : vector<32xf32>
  %q = arith.cmpi ult, %a, %c : vector<32xi32>
  func.return
}
