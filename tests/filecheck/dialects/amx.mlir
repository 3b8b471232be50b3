// Round trips of the amx dialect (upstream MLIR's syntax): pretty form, pretty -> pretty,
// and generic -> pretty.
// RUN: quantir-opt --split-input-file %s | filecheck %s
// RUN: quantir-opt --split-input-file %s | quantir-opt --split-input-file | filecheck %s
// RUN: quantir-opt --split-input-file --print-op-generic %s | quantir-opt --split-input-file | filecheck %s

// A tile product: codes (unsigned) times x in VNNI layout (signed), into int32 sums.
// CHECK-LABEL: func.func @product
// CHECK:         %zero = amx.tile_zero : !amx.tile<16x16xi32>
// CHECK-NEXT:    %a = amx.tile_load %w[%i, %c0] : memref<16x4096xi8> into !amx.tile<16x32xi8>
// CHECK-NEXT:    %b = amx.tile_load %x[%i, %c0] : memref<?x64xi8> into !amx.tile<8x64xi8>
// CHECK-NEXT:    %c = amx.tile_muli %a zext, %b, %zero : !amx.tile<16x32xi8>, !amx.tile<8x64xi8>, !amx.tile<16x16xi32>
// CHECK-NEXT:    %d = amx.tile_muli %a, %b zext, %c : !amx.tile<16x32xi8>, !amx.tile<8x64xi8>, !amx.tile<16x16xi32>
// CHECK-NEXT:    amx.tile_store %out[%c0, %c0], %d : memref<16x16xi32>, !amx.tile<16x16xi32>
func.func @product(%w: memref<16x4096xi8>, %x: memref<?x64xi8>, %out: memref<16x16xi32>, %i: index) {
  %c0 = arith.constant 0 : index
  %zero = amx.tile_zero : !amx.tile<16x16xi32>
  %a = amx.tile_load %w[%i, %c0] : memref<16x4096xi8> into !amx.tile<16x32xi8>
  %b = amx.tile_load %x[%i, %c0] : memref<?x64xi8> into !amx.tile<8x64xi8>
  %c = amx.tile_muli %a zext, %b, %zero : !amx.tile<16x32xi8>, !amx.tile<8x64xi8>, !amx.tile<16x16xi32>
  %d = amx.tile_muli %a, %b zext, %c : !amx.tile<16x32xi8>, !amx.tile<8x64xi8>, !amx.tile<16x16xi32>
  amx.tile_store %out[%c0, %c0], %d : memref<16x16xi32>, !amx.tile<16x16xi32>
  func.return
}

// -----

// A 1-D buffer with an explicit stride (in elements).
// CHECK-LABEL: func.func @strided
// CHECK:         %t = amx.tile_load %buf[%i], %s : memref<?xi8> into !amx.tile<8x64xi8>
// CHECK-NEXT:    amx.tile_store %buf[%i], %t, %s : memref<?xi8>, !amx.tile<8x64xi8>
func.func @strided(%buf: memref<?xi8>, %i: index, %s: index) {
  %t = amx.tile_load %buf[%i], %s : memref<?xi8> into !amx.tile<8x64xi8>
  amx.tile_store %buf[%i], %t, %s : memref<?xi8>, !amx.tile<8x64xi8>
  func.return
}
