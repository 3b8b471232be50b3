// One case per error of quantir's vector-capable arith casts (dialects/arith_vector.py).
// Each case's `expected-error` annotation names the line and text of the
// error its chunk must produce (MLIR's --verify-diagnostics): a missing or an
// unexpected error fails the run.
// RUN: quantir-opt %s --split-input-file --verify-diagnostics

// Vector casts keep the shape: scalar to vector ...
func.func @f(%b: i8) {
  // expected-error@+1 {{arith.extui: operand and result must both be scalars or vectors of the same shape, got i8 and vector<4xi32>}}
  %u = arith.extui %b : i8 to vector<4xi32>
  func.return
}

// -----

// ... or vector to another shape.
func.func @f(%b: vector<32xi8>) {
  // expected-error@+1 {{arith.uitofp: operand and result must both be scalars or vectors of the same shape, got vector<32xi8> and vector<16xf32>}}
  %u = arith.uitofp %b : vector<32xi8> to vector<16xf32>
  func.return
}

// -----

// Integer casts take integers (operand) ...
func.func @f(%x: vector<4xf32>) {
  // expected-error@+1 {{arith.extui: operand element type f32 is not int}}
  %u = arith.extui %x : vector<4xf32> to vector<4xi64>
  func.return
}

// -----

// ... and produce integers.
func.func @f(%x: i8) {
  // expected-error@+1 {{arith.extsi: result element type f32 is not int}}
  %u = arith.extsi %x : i8 to f32
  func.return
}

// -----

// Int-to-float casts take integers.
func.func @f(%x: vector<4xf32>) {
  // expected-error@+1 {{arith.sitofp: operand element type f32 is not int}}
  %u = arith.sitofp %x : vector<4xf32> to vector<4xf64>
  func.return
}

// -----

// ... and produce floats.
func.func @f(%x: vector<4xi32>) {
  // expected-error@+1 {{arith.uitofp: result element type i64 is not float}}
  %u = arith.uitofp %x : vector<4xi32> to vector<4xi64>
  func.return
}

// -----

// Float-to-int casts take floats.
func.func @f(%x: i32) {
  // expected-error@+1 {{arith.fptosi: operand element type i32 is not float}}
  %u = arith.fptosi %x : i32 to i32
  func.return
}

// -----

// ... and produce integers.
func.func @f(%x: vector<4xf32>) {
  // expected-error@+1 {{arith.fptoui: result element type f16 is not int}}
  %u = arith.fptoui %x : vector<4xf32> to vector<4xf16>
  func.return
}

// -----

// index is not an integer type for these casts (use arith.index_cast).
func.func @f(%x: index) {
  // expected-error@+1 {{arith.extui: operand element type index is not int}}
  %u = arith.extui %x : index to i64
  func.return
}

// -----

// Extensions grow the bit width ...
func.func @f(%x: vector<4xi32>) {
  // expected-error@+1 {{arith.extui: the result bit width must be larger than the operand's (32 -> 32)}}
  %u = arith.extui %x : vector<4xi32> to vector<4xi32>
  func.return
}

// -----

// ... strictly.
func.func @f(%x: i32) {
  // expected-error@+1 {{arith.extsi: the result bit width must be larger than the operand's (32 -> 16)}}
  %u = arith.extsi %x : i32 to i16
  func.return
}

// -----

// Truncations shrink it.
func.func @f(%x: vector<4xi8>) {
  // expected-error@+1 {{arith.trunci: the result bit width must be smaller than the operand's (8 -> 32)}}
  %u = arith.trunci %x : vector<4xi8> to vector<4xi32>
  func.return
}
