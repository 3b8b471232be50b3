// One case per error of the qrt dialect's verifier, and of its declared operand
// and property types.
// quantir-opt prints each chunk's error and goes on with the next chunk; every
// case checks that its own chunk (the line after the separator quantir-opt
// prints between chunks) fails with the expected message.
// RUN: quantir-opt %s --split-input-file --parsing-diagnostics --verify-diagnostics | filecheck %s

// qrt.launch: threads_per_block and items_per_block go together; not
// threads_per_block alone ...
// CHECK:      {{^}}qrt.launch: threads_per_block and items_per_block go together (GPU launches)
func.func @f(%a: memref<?xf32>, %n: index) {
  qrt.launch @k(%a) range(%n) {threads_per_block = 256 : i64} : memref<?xf32>
  func.return
}

// -----

// ... nor items_per_block alone.
// CHECK:      {{^}}// {{-----$}}
// CHECK-NEXT: {{^}}qrt.launch: threads_per_block and items_per_block go together (GPU launches)
func.func @f(%a: memref<?xf32>, %n: index) {
  qrt.launch @k(%a) range(%n) {items_per_block = 8 : i64} : memref<?xf32>
  func.return
}

// -----

// Both are positive.
// CHECK:      {{^}}// {{-----$}}
// CHECK-NEXT: {{^}}qrt.launch: threads_per_block must be positive, got 0
func.func @f(%a: memref<?xf32>, %n: index) {
  qrt.launch @k(%a) range(%n) {threads_per_block = 0 : i64, items_per_block = 8 : i64} : memref<?xf32>
  func.return
}

// -----

// Both are positive (items_per_block).
// CHECK:      {{^}}// {{-----$}}
// CHECK-NEXT: {{^}}qrt.launch: items_per_block must be positive, got -1
func.func @f(%a: memref<?xf32>, %n: index) {
  qrt.launch @k(%a) range(%n) {threads_per_block = 32 : i64, items_per_block = -1 : i64} : memref<?xf32>
  func.return
}

// -----

// They are i64.
// CHECK:      {{^}}// {{-----$}}
// CHECK-NEXT: {{^}}Expected attribute i64 but got i32
func.func @f(%a: memref<?xf32>, %n: index) {
  qrt.launch @k(%a) range(%n) {threads_per_block = 32 : i32, items_per_block = 1 : i64} : memref<?xf32>
  func.return
}

// -----

// The range is an index.
// CHECK:      {{^}}// {{-----$}}
// CHECK-NEXT: {{^}}operand 'range' at position 1 does not verify:
// CHECK-NEXT: {{^}}i64 should be of base attribute index
func.func @f(%a: memref<?xf32>, %n: i64) {
  "qrt.launch"(%a, %n) <{kernel = @k}> : (memref<?xf32>, i64) -> ()
  func.return
}

// -----

// A launch names its kernel.
// CHECK:      {{^}}// {{-----$}}
// CHECK-NEXT: {{^}}property 'kernel' expected in operation 'qrt.launch'
func.func @f(%a: memref<?xf32>, %n: index) {
  "qrt.launch"(%a, %n) : (memref<?xf32>, index) -> ()
  func.return
}

// -----

// Every argument has a type.
// CHECK:      {{^}}// {{-----$}}
// CHECK-NEXT: {{.*}}qrt-invalid.mlir:[[# @LINE + 4]]:3{{$}}
// CHECK:      {{^ +}}expected 1 operand types but had 2
func.func @f(%a: memref<?xf32>, %n: index) {
  qrt.launch @k(%a, %a) range(%n) : memref<?xf32>
  func.return
}

// -----

// qrt.check takes an i1 condition ...
// CHECK:      {{^}}// {{-----$}}
// CHECK-NEXT: {{.*}}qrt-invalid.mlir:[[# @LINE + 3]]:13{{$}}
// CHECK:      {{^ +}}operand is used with type i1, but has been previously used or defined with type i32
func.func @f(%c: i32) {
  qrt.check %c, "message"
  func.return
}

// -----

// ... and a message.
// CHECK:      {{^}}// {{-----$}}
// CHECK-NEXT: {{.*}}qrt-invalid.mlir:[[# @LINE + 4]]:3{{$}}
// CHECK:      {{^ +}}Expected ','
func.func @f(%c: i1) {
  qrt.check %c
  func.return
}

// -----

// qrt.warp_reduce sums f32 values.
// CHECK:      {{^}}// {{-----$}}
// CHECK-NEXT: {{^}}f16 should be of base attribute f32
// CHECK-NEXT: {{^}}
func.func @f(%v: f16) {
  %s = qrt.warp_reduce %v : f16
  func.return
}

// -----

// qrt.prefetch takes one index per dimension of its memref.
// CHECK:      {{^}}// {{-----$}}
// CHECK-NEXT: {{^}}qrt.prefetch: memref<?x2304xi8> takes 2 indices, got 1
// CHECK-NEXT: {{^}}
func.func @f(%w: memref<?x2304xi8>, %i: index) {
  qrt.prefetch %w[%i] : memref<?x2304xi8>
  func.return
}

// -----

// qrt.dot_u8i8 takes four bytes per accumulator lane ...
// CHECK:      {{^}}// {{-----$}}
// CHECK-NEXT: {{^}}qrt.dot_u8i8: vector<16xi8> holds 16 bytes, expected four per accumulator lane (32 for vector<8xi32>)
// CHECK-NEXT: {{^}}
func.func @f(%acc: vector<8xi32>, %a: vector<16xi8>) {
  %r = qrt.dot_u8i8 %acc, %a, %a {code_bits = 4 : i64} : vector<16xi8> into vector<8xi32>
  func.return
}

// -----

// ... accumulates into i32 lanes ...
// CHECK:      {{^}}// {{-----$}}
// CHECK-NEXT: {{^}}qrt.dot_u8i8: the accumulator must be vector<Lxi32>, got vector<8xi16>
// CHECK-NEXT: {{^}}
func.func @f(%acc: vector<8xi16>, %a: vector<32xi8>) {
  %r = qrt.dot_u8i8 %acc, %a, %a {code_bits = 4 : i64} : vector<32xi8> into vector<8xi16>
  func.return
}

// -----

// ... multiplies bytes ...
// CHECK:      {{^}}// {{-----$}}
// CHECK-NEXT: {{^}}qrt.dot_u8i8: codes and values must be vector<Nxi8>, got vector<32xi16>
// CHECK-NEXT: {{^}}
func.func @f(%acc: vector<8xi32>, %a: vector<32xi16>) {
  %r = qrt.dot_u8i8 %acc, %a, %a {code_bits = 4 : i64} : vector<32xi16> into vector<8xi32>
  func.return
}

// -----

// ... and its codes have 1 to 8 bits.
// CHECK:      {{^}}// {{-----$}}
// CHECK-NEXT: {{^}}qrt.dot_u8i8: code_bits must be in 1..8, got 9
// CHECK-NEXT: {{^}}
func.func @f(%acc: vector<8xi32>, %a: vector<32xi8>) {
  %r = qrt.dot_u8i8 %acc, %a, %a {code_bits = 9 : i64} : vector<32xi8> into vector<8xi32>
  func.return
}
