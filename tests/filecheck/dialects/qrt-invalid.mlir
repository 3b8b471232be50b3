// One case per error of the qrt dialect's verifier, and of its declared operand
// and property types.
// Each case's `expected-error` annotation names the line and text of the
// error its chunk must produce (MLIR's --verify-diagnostics): a missing or an
// unexpected error fails the run.
// RUN: quantir-opt %s --split-input-file --verify-diagnostics

// qrt.launch: threads_per_block and items_per_block go together; not
// threads_per_block alone ...
func.func @f(%a: memref<?xf32>, %n: index) {
  // expected-error@+1 {{qrt.launch: threads_per_block and items_per_block go together (GPU launches)}}
  qrt.launch @k(%a) range(%n) {threads_per_block = 256 : i64} : memref<?xf32>
  func.return
}

// -----

// ... nor items_per_block alone.
func.func @f(%a: memref<?xf32>, %n: index) {
  // expected-error@+1 {{qrt.launch: threads_per_block and items_per_block go together (GPU launches)}}
  qrt.launch @k(%a) range(%n) {items_per_block = 8 : i64} : memref<?xf32>
  func.return
}

// -----

// Both are positive.
func.func @f(%a: memref<?xf32>, %n: index) {
  // expected-error@+1 {{qrt.launch: threads_per_block must be positive, got 0}}
  qrt.launch @k(%a) range(%n) {threads_per_block = 0 : i64, items_per_block = 8 : i64} : memref<?xf32>
  func.return
}

// -----

// Both are positive (items_per_block).
func.func @f(%a: memref<?xf32>, %n: index) {
  // expected-error@+1 {{qrt.launch: items_per_block must be positive, got -1}}
  qrt.launch @k(%a) range(%n) {threads_per_block = 32 : i64, items_per_block = -1 : i64} : memref<?xf32>
  func.return
}

// -----

// They are i64.
func.func @f(%a: memref<?xf32>, %n: index) {
  // expected-error@+1 {{Expected attribute i64 but got i32}}
  qrt.launch @k(%a) range(%n) {threads_per_block = 32 : i32, items_per_block = 1 : i64} : memref<?xf32>
  func.return
}

// -----

// The range is an index.
func.func @f(%a: memref<?xf32>, %n: i64) {
  // expected-error@+1 {{operand 'range' at position 1 does not verify:}}
  "qrt.launch"(%a, %n) <{kernel = @k}> : (memref<?xf32>, i64) -> ()
  func.return
}

// -----

// A launch names its kernel.
func.func @f(%a: memref<?xf32>, %n: index) {
  // expected-error@+1 {{property 'kernel' expected in operation 'qrt.launch'}}
  "qrt.launch"(%a, %n) : (memref<?xf32>, index) -> ()
  func.return
}

// -----

// Every argument has a type.
func.func @f(%a: memref<?xf32>, %n: index) {
  qrt.launch @k(%a, %a) range(%n) : memref<?xf32>
  // expected-error@+1 {{expected 1 operand types but had 2}}
  func.return
}

// -----

// qrt.check takes an i1 condition ...
func.func @f(%c: i32) {
  // expected-error@+1 {{operand is used with type i1, but has been previously used or defined with type i32}}
  qrt.check %c, "message"
  func.return
}

// -----

// ... and a message.
func.func @f(%c: i1) {
  qrt.check %c
  // expected-error@+1 {{Expected ','}}
  func.return
}

// -----

// qrt.warp_reduce sums f32 values.
func.func @f(%v: f16) {
  // expected-error@+1 {{f16 should be of base attribute f32}}
  %s = qrt.warp_reduce %v : f16
  func.return
}

// -----

// qrt.prefetch takes one index per dimension of its memref.
func.func @f(%w: memref<?x2304xi8>, %i: index) {
  // expected-error@+1 {{qrt.prefetch: memref<?x2304xi8> takes 2 indices, got 1}}
  qrt.prefetch %w[%i] : memref<?x2304xi8>
  func.return
}

// -----

// qrt.dot_u8i8 takes four bytes per accumulator lane ...
func.func @f(%acc: vector<8xi32>, %a: vector<16xi8>) {
  // expected-error@+1 {{qrt.dot_u8i8: vector<16xi8> holds 16 bytes, expected four per accumulator lane (32 for vector<8xi32>)}}
  %r = qrt.dot_u8i8 %acc, %a, %a {code_bits = 4 : i64} : vector<16xi8> into vector<8xi32>
  func.return
}

// -----

// ... accumulates into i32 lanes ...
func.func @f(%acc: vector<8xi16>, %a: vector<32xi8>) {
  // expected-error@+1 {{qrt.dot_u8i8: the accumulator must be vector<Lxi32>, got vector<8xi16>}}
  %r = qrt.dot_u8i8 %acc, %a, %a {code_bits = 4 : i64} : vector<32xi8> into vector<8xi16>
  func.return
}

// -----

// ... multiplies bytes ...
func.func @f(%acc: vector<8xi32>, %a: vector<32xi16>) {
  // expected-error@+1 {{qrt.dot_u8i8: codes and values must be vector<Nxi8>, got vector<32xi16>}}
  %r = qrt.dot_u8i8 %acc, %a, %a {code_bits = 4 : i64} : vector<32xi16> into vector<8xi32>
  func.return
}

// -----

// ... and its codes have 1 to 8 bits.
func.func @f(%acc: vector<8xi32>, %a: vector<32xi8>) {
  // expected-error@+1 {{qrt.dot_u8i8: code_bits must be in 1..8, got 9}}
  %r = qrt.dot_u8i8 %acc, %a, %a {code_bits = 9 : i64} : vector<32xi8> into vector<8xi32>
  func.return
}

// -----

// qrt.dot_u8i8_scaled takes one 16-bit scale per accumulator lane ...
func.func @f(%acc: vector<8xi32>, %a: vector<32xi8>, %s: vector<8xi32>) {
  // expected-error@+1 {{qrt.dot_u8i8_scaled: the scales must be vector<8xi16> (one per lane), got vector<8xi32>}}
  %r = qrt.dot_u8i8_scaled %acc, %a, %a, %s {code_bits = 4 : i64} : vector<32xi8>, vector<8xi32> into vector<8xi32>
  func.return
}

// -----

// ... four bytes per lane ...
func.func @f(%acc: vector<8xi32>, %a: vector<16xi8>, %s: vector<8xi16>) {
  // expected-error@+1 {{qrt.dot_u8i8_scaled: vector<16xi8> holds 16 bytes, expected four per accumulator lane (32 for vector<8xi32>)}}
  %r = qrt.dot_u8i8_scaled %acc, %a, %a, %s {code_bits = 4 : i64} : vector<16xi8>, vector<8xi16> into vector<8xi32>
  func.return
}

// -----

// ... and codes of at most 7 bits (pairs of products fit 16 bits).
func.func @f(%acc: vector<8xi32>, %a: vector<32xi8>, %s: vector<8xi16>) {
  // expected-error@+1 {{qrt.dot_u8i8_scaled: code_bits must be in 1..7, got 8}}
  %r = qrt.dot_u8i8_scaled %acc, %a, %a, %s {code_bits = 8 : i64} : vector<32xi8>, vector<8xi16> into vector<8xi32>
  func.return
}
