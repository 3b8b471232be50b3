// One case per error of quantir's vector-capable arith casts (dialects/arith_vector.py).
// quantir-opt prints each chunk's error and goes on with the next chunk; every
// case checks that its own chunk (the line after the separator quantir-opt
// prints between chunks) fails with the expected message.
// RUN: quantir-opt %s --split-input-file --parsing-diagnostics --verify-diagnostics | filecheck %s

// Vector casts keep the shape: scalar to vector ...
// CHECK:      {{^}}arith.extui: operand and result must both be scalars or vectors of the same shape, got i8 and vector<4xi32>
func.func @f(%b: i8) {
  %u = arith.extui %b : i8 to vector<4xi32>
  func.return
}

// -----

// ... or vector to another shape.
// CHECK:      {{^}}// {{-----$}}
// CHECK-NEXT: {{^}}arith.uitofp: operand and result must both be scalars or vectors of the same shape, got vector<32xi8> and vector<16xf32>
func.func @f(%b: vector<32xi8>) {
  %u = arith.uitofp %b : vector<32xi8> to vector<16xf32>
  func.return
}

// -----

// Integer casts take integers (operand) ...
// CHECK:      {{^}}// {{-----$}}
// CHECK-NEXT: {{^}}arith.extui: operand element type f32 is not int
func.func @f(%x: vector<4xf32>) {
  %u = arith.extui %x : vector<4xf32> to vector<4xi64>
  func.return
}

// -----

// ... and produce integers.
// CHECK:      {{^}}// {{-----$}}
// CHECK-NEXT: {{^}}arith.extsi: result element type f32 is not int
func.func @f(%x: i8) {
  %u = arith.extsi %x : i8 to f32
  func.return
}

// -----

// Int-to-float casts take integers.
// CHECK:      {{^}}// {{-----$}}
// CHECK-NEXT: {{^}}arith.sitofp: operand element type f32 is not int
func.func @f(%x: vector<4xf32>) {
  %u = arith.sitofp %x : vector<4xf32> to vector<4xf64>
  func.return
}

// -----

// ... and produce floats.
// CHECK:      {{^}}// {{-----$}}
// CHECK-NEXT: {{^}}arith.uitofp: result element type i64 is not float
func.func @f(%x: vector<4xi32>) {
  %u = arith.uitofp %x : vector<4xi32> to vector<4xi64>
  func.return
}

// -----

// Float-to-int casts take floats.
// CHECK:      {{^}}// {{-----$}}
// CHECK-NEXT: {{^}}arith.fptosi: operand element type i32 is not float
func.func @f(%x: i32) {
  %u = arith.fptosi %x : i32 to i32
  func.return
}

// -----

// ... and produce integers.
// CHECK:      {{^}}// {{-----$}}
// CHECK-NEXT: {{^}}arith.fptoui: result element type f16 is not int
func.func @f(%x: vector<4xf32>) {
  %u = arith.fptoui %x : vector<4xf32> to vector<4xf16>
  func.return
}

// -----

// index is not an integer type for these casts (use arith.index_cast).
// CHECK:      {{^}}// {{-----$}}
// CHECK-NEXT: {{^}}arith.extui: operand element type index is not int
func.func @f(%x: index) {
  %u = arith.extui %x : index to i64
  func.return
}

// -----

// Extensions grow the bit width ...
// CHECK:      {{^}}// {{-----$}}
// CHECK-NEXT: {{^}}arith.extui: the result bit width must be larger than the operand's (32 -> 32)
func.func @f(%x: vector<4xi32>) {
  %u = arith.extui %x : vector<4xi32> to vector<4xi32>
  func.return
}

// -----

// ... strictly.
// CHECK:      {{^}}// {{-----$}}
// CHECK-NEXT: {{^}}arith.extsi: the result bit width must be larger than the operand's (32 -> 16)
func.func @f(%x: i32) {
  %u = arith.extsi %x : i32 to i16
  func.return
}

// -----

// Truncations shrink it.
// CHECK:      {{^}}// {{-----$}}
// CHECK-NEXT: {{^}}arith.trunci: the result bit width must be smaller than the operand's (8 -> 32)
func.func @f(%x: vector<4xi8>) {
  %u = arith.trunci %x : vector<4xi8> to vector<4xi32>
  func.return
}
