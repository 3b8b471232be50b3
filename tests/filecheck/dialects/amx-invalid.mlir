// RUN: quantir-opt %s --split-input-file --verify-diagnostics

// A tile holds at most 16 rows of 64 bytes ...
func.func @f() {
  // expected-error@+1 {{!amx.tile: at most 16 rows of 64 bytes, got 16 rows of 128 bytes}}
  %t = amx.tile_zero : !amx.tile<16x32xi32>
  func.return
}

// -----

// ... of bytes or 32-bit integers.
func.func @f() {
  // expected-error@+1 {{!amx.tile: elements must be i8 or i32, got f32}}
  %t = amx.tile_zero : !amx.tile<16x16xf32>
  func.return
}

// -----

// The product's shapes must chain: lhs M x K bytes, rhs K/4 x 4N bytes, acc M x N.
func.func @f(%w: memref<16x64xi8>) {
  %c0 = arith.constant 0 : index
  %a = amx.tile_load %w[%c0, %c0] : memref<16x64xi8> into !amx.tile<16x32xi8>
  %b = amx.tile_load %w[%c0, %c0] : memref<16x64xi8> into !amx.tile<16x64xi8>
  %z = amx.tile_zero : !amx.tile<16x16xi32>
  // expected-error@+1 {{amx.tile_muli: shapes do not chain}}
  %c = amx.tile_muli %a zext, %b, %z : !amx.tile<16x32xi8>, !amx.tile<16x64xi8>, !amx.tile<16x16xi32>
  func.return
}

// -----

// A 1-D buffer has no row stride to infer.
func.func @f(%buf: memref<?xi8>, %i: index) {
  // expected-error@+1 {{amx.tile_load: a 1-D buffer (memref<?xi8>) needs an explicit stride}}
  %t = amx.tile_load %buf[%i] : memref<?xi8> into !amx.tile<8x64xi8>
  func.return
}
