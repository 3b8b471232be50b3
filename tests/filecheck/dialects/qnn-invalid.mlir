// One case per error of the qnn dialect's parser and verifier.
// Each case's `expected-error` annotation names the line and text of the
// error its chunk must produce (MLIR's --verify-diagnostics): a missing or an
// unexpected error fails the run.
// RUN: quantir-opt %s --split-input-file --verify-diagnostics

// Parse errors: every operand needs a type.
func.func @f(%a: tensor<4xf32>, %b: tensor<4xf32>) {
  // expected-error@+1 {{2 operands but 1 operand types}}
  %y = qnn.add %a, %b : (tensor<4xf32>) -> tensor<4xf32>
  func.return
}

// -----

// The value form has one result.
func.func @f(%a: tensor<4xf32>, %b: tensor<4xf32>) {
  // expected-error@+1 {{expected at most one result type}}
  %y = qnn.mul %a, %b : (tensor<4xf32>, tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>)
  func.return
}

// -----

// Verifier errors. Broadcasting: a lower-rank operand matches the trailing
// dimensions of the other; a size-1 dimension of the LARGER operand does not
// stretch to the smaller one.
func.func @f(%a: tensor<4x1xf32>, %b: tensor<8xf32>) {
  // expected-error@+1 {{qnn.add: cannot broadcast [4, 1] with [8]: dimension 1 of the larger operand is 1}}
  %y = qnn.add %a, %b : (tensor<4x1xf32>, tensor<8xf32>) -> tensor<4x8xf32>
  func.return
}

// -----

// Trailing dimensions must be equal or 1.
func.func @f(%a: tensor<4x8xf32>, %b: tensor<7xf32>) {
  // expected-error@+1 {{qnn.mul: cannot broadcast [4, 8] with [7]: trailing dimensions must be equal or 1}}
  %y = qnn.mul %a, %b : (tensor<4x8xf32>, tensor<7xf32>) -> tensor<4x8xf32>
  func.return
}

// -----

// The result has the broadcast shape.
func.func @f(%a: tensor<4x8xf32>, %b: tensor<8xf32>) {
  // expected-error@+1 {{qnn.add: result shape [4, 9] does not match the broadcast shape [4, 8] of the operands}}
  %y = qnn.add %a, %b : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x9xf32>
  func.return
}

// -----

// ... and the broadcast rank.
func.func @f(%a: tensor<4x8xf32>, %b: tensor<8xf32>) {
  // expected-error@+1 {{qnn.add: result shape [8] does not match the broadcast shape [4, 8] of the operands}}
  %y = qnn.add %a, %b : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<8xf32>
  func.return
}

// -----

// Element types: f32 only (lhs).
func.func @f(%a: tensor<4xf16>, %b: tensor<4xf32>) {
  // expected-error@+1 {{qnn.add: lhs must have element type f32, got f16}}
  %y = qnn.add %a, %b : (tensor<4xf16>, tensor<4xf32>) -> tensor<4xf32>
  func.return
}

// -----

// rhs.
func.func @f(%a: tensor<4xf32>, %b: tensor<4xi32>) {
  // expected-error@+1 {{qnn.mul: rhs must have element type f32, got i32}}
  %y = qnn.mul %a, %b : (tensor<4xf32>, tensor<4xi32>) -> tensor<4xf32>
  func.return
}

// -----

// The result.
func.func @f(%x: tensor<2x4xf32>, %w: tensor<4x3xf32>) {
  // expected-error@+1 {{qnn.matmul: result must have element type f32, got f64}}
  %y = qnn.matmul %x, %w : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf64>
  func.return
}

// -----

// Tensor vs memref forms: a result or an outs() buffer, not both.
func.func @f(%a: memref<4xf32>, %o: memref<4xf32>) {
  // expected-error@+1 {{qnn.add: has both a result and an outs() buffer}}
  %y = qnn.add %a, %a outs(%o) : (memref<4xf32>, memref<4xf32>, memref<4xf32>) -> tensor<4xf32>
  func.return
}

// -----

// The outs() form works on memrefs only.
func.func @f(%a: tensor<4xf32>, %o: memref<4xf32>) {
  // expected-error@+1 {{qnn.add: the outs() form works on memrefs: every operand must be a memref}}
  qnn.add %a, %a outs(%o) : (tensor<4xf32>, tensor<4xf32>, memref<4xf32>) -> ()
  func.return
}

// -----

// The outs() buffer is a memref (an operand constraint of the op).
func.func @f(%a: memref<4xf32>, %o: tensor<4xf32>) {
  // expected-error@+1 {{tensor<4xf32> should be of base attribute memref}}
  qnn.mul %a, %a outs(%o) : (memref<4xf32>, memref<4xf32>, tensor<4xf32>) -> ()
  func.return
}

// -----

// Neither a result nor an outs() buffer.
func.func @f(%a: tensor<4xf32>) {
  // expected-error@+1 {{qnn.add: needs a tensor result or an outs() memref}}
  qnn.add %a, %a : (tensor<4xf32>, tensor<4xf32>) -> ()
  func.return
}

// -----

// The value form works on tensors only.
func.func @f(%x: memref<2x4xf32>, %w: tensor<4x3xf32>) {
  // expected-error@+1 {{qnn.matmul: the value form works on tensors: every operand must be a tensor}}
  %y = qnn.matmul %x, %w : (memref<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
  func.return
}

// -----

// qnn.matmul: x is [..., K], at least 1-D.
func.func @f(%x: tensor<f32>, %w: tensor<4x3xf32>) {
  // expected-error@+1 {{qnn.matmul: x must be [..., K], got a scalar}}
  %y = qnn.matmul %x, %w : (tensor<f32>, tensor<4x3xf32>) -> tensor<3xf32>
  func.return
}

// -----

// w is [K, N].
func.func @f(%x: tensor<2x4xf32>, %w: tensor<4x3x1xf32>) {
  // expected-error@+1 {{qnn.matmul: w must be [K, N], got [4, 3, 1]}}
  %y = qnn.matmul %x, %w : (tensor<2x4xf32>, tensor<4x3x1xf32>) -> tensor<2x3xf32>
  func.return
}

// -----

// K is static (in x) ...
func.func @f(%x: tensor<2x?xf32>, %w: tensor<4x3xf32>) {
  // expected-error@+1 {{qnn.matmul: K must be static, got x [2, ?] and w [4, 3]}}
  %y = qnn.matmul %x, %w : (tensor<2x?xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
  func.return
}

// -----

// ... and in w.
func.func @f(%x: tensor<2x4xf32>, %w: tensor<?x3xf32>) {
  // expected-error@+1 {{qnn.matmul: K must be static, got x [2, 4] and w [?, 3]}}
  %y = qnn.matmul %x, %w : (tensor<2x4xf32>, tensor<?x3xf32>) -> tensor<2x3xf32>
  func.return
}

// -----

// The K of x and w agree.
func.func @f(%x: tensor<2x4xf32>, %w: tensor<5x3xf32>) {
  // expected-error@+1 {{qnn.matmul: x is [..., 4] but w is [5, N]: K must match}}
  %y = qnn.matmul %x, %w : (tensor<2x4xf32>, tensor<5x3xf32>) -> tensor<2x3xf32>
  func.return
}

// -----

// The result is [..., N].
func.func @f(%x: tensor<2x4xf32>, %w: tensor<4x3xf32>) {
  // expected-error@+1 {{qnn.matmul: result shape [2, 4] does not match the expected [2, 3]}}
  %y = qnn.matmul %x, %w : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x4xf32>
  func.return
}

// -----

// ... with the leading dimensions of x.
func.func @f(%x: tensor<2x4xf32>, %w: tensor<4x3xf32>, %o: memref<3x3xf32>, %xm: memref<2x4xf32>, %wm: memref<4x3xf32>) {
  // expected-error@+1 {{qnn.matmul: result shape [3, 3] does not match the expected [2, 3]}}
  qnn.matmul %xm, %wm outs(%o) : (memref<2x4xf32>, memref<4x3xf32>, memref<3x3xf32>) -> ()
  func.return
}
