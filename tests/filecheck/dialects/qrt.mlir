// Round trips of the qrt dialect: pretty form, pretty -> pretty, and generic -> pretty.
// RUN: quantir-opt --split-input-file %s | filecheck %s
// RUN: quantir-opt --split-input-file %s | quantir-opt --split-input-file | filecheck %s
// RUN: quantir-opt --split-input-file --print-op-generic %s | quantir-opt --split-input-file | filecheck %s
// RUN: quantir-opt --split-input-file --print-op-generic %s | filecheck %s --check-prefix=GENERIC

// A host function after outlining: CPU launches (no GPU attributes) and the
// kernel they run.
// CHECK-LABEL: func.func @main_kernel0
// CHECK-SAME:    attributes {qrt.kernel}
// CHECK-LABEL: func.func @main
// CHECK:         qrt.launch @main_kernel0(%x, %w, %y) range(%c4096) : memref<?x4096xf32>, memref<4096x2304xi8>, memref<?x4096xf32>
// CHECK-NEXT:    qrt.launch @main_kernel0(%x, %w, %y) range(%c4096) {note = "again"} : memref<?x4096xf32>, memref<4096x2304xi8>, memref<?x4096xf32>
// CHECK-NEXT:    qrt.launch @nullary() range(%c4096) :
// GENERIC-LABEL: "func.func"() <{sym_name = "main"
// GENERIC:         "qrt.launch"(%x, %w, %y, %c4096) <{kernel = @main_kernel0}> : (memref<?x4096xf32>, memref<4096x2304xi8>, memref<?x4096xf32>, index) -> ()
func.func @main_kernel0(%lo: index, %hi: index, %x: memref<?x4096xf32>, %w: memref<4096x2304xi8>, %y: memref<?x4096xf32>) attributes {qrt.kernel} {
  func.return
}
func.func @nullary(%lo: index, %hi: index) attributes {qrt.kernel} {
  func.return
}
func.func @main(%x: memref<?x4096xf32>, %w: memref<4096x2304xi8>, %y: memref<?x4096xf32>) {
  %c4096 = arith.constant 4096 : index
  qrt.launch @main_kernel0(%x, %w, %y) range(%c4096) : memref<?x4096xf32>, memref<4096x2304xi8>, memref<?x4096xf32>
  qrt.launch @main_kernel0(%x, %w, %y) range(%c4096) {note = "again"} : memref<?x4096xf32>, memref<4096x2304xi8>, memref<?x4096xf32>
  qrt.launch @nullary() range(%c4096) :
  func.return
}

// -----

// GPU launches carry threads_per_block and items_per_block (printed in the
// order given).
// CHECK-LABEL: func.func @gpu_launch
// CHECK:         qrt.launch @g(%a) range(%n) {threads_per_block = 256 : i64, items_per_block = 8 : i64} : memref<?x64xf32>
// CHECK-NEXT:    qrt.launch @g(%a) range(%n) {items_per_block = 1 : i64, threads_per_block = 32 : i64} : memref<?x64xf32>
// GENERIC-LABEL: "func.func"() <{sym_name = "gpu_launch"
// GENERIC:         "qrt.launch"(%a, %n) <{kernel = @g, threads_per_block = 256 : i64, items_per_block = 8 : i64}> : (memref<?x64xf32>, index) -> ()
// GENERIC-NEXT:    "qrt.launch"(%a, %n) <{kernel = @g, items_per_block = 1 : i64, threads_per_block = 32 : i64}> : (memref<?x64xf32>, index) -> ()
func.func @gpu_launch(%a: memref<?x64xf32>, %n: index) {
  qrt.launch @g(%a) range(%n) {threads_per_block = 256 : i64, items_per_block = 8 : i64} : memref<?x64xf32>
  qrt.launch @g(%a) range(%n) {items_per_block = 1 : i64, threads_per_block = 32 : i64} : memref<?x64xf32>
  func.return
}

// -----

// Run-time checks and warp reductions.
// CHECK-LABEL: func.func @check_and_reduce
// CHECK:         %ok = arith.cmpi eq, %m0, %m1 : index
// CHECK-NEXT:    qrt.check %ok, "qnn.add: dimension 0 of the operands differs"
// CHECK-NEXT:    qrt.check %ok, "with \22quotes\22 and \0A a newline" {tag = 1 : i64}
// CHECK-NEXT:    %total = qrt.warp_reduce %partial : f32
// CHECK-NEXT:    %again = qrt.warp_reduce %total {tag = 2 : i64} : f32
// GENERIC-LABEL: "func.func"() <{sym_name = "check_and_reduce"
// GENERIC:         "qrt.check"(%ok) <{message = "qnn.add: dimension 0 of the operands differs"}> : (i1) -> ()
// GENERIC:         %total = "qrt.warp_reduce"(%partial) : (f32) -> f32
func.func @check_and_reduce(%m0: index, %m1: index, %partial: f32) -> f32 {
  %ok = arith.cmpi eq, %m0, %m1 : index
  qrt.check %ok, "qnn.add: dimension 0 of the operands differs"
  qrt.check %ok, "with \"quotes\" and \n a newline" {tag = 1 : i64}
  %total = qrt.warp_reduce %partial : f32
  %again = qrt.warp_reduce %total {tag = 2 : i64} : f32
  func.return %again : f32
}

// -----

// Prefetch hints take one index per dimension (they may run past the end).
// CHECK-LABEL: func.func @prefetch
// CHECK:         qrt.prefetch %w[%row, %col] : memref<?x2304xi8>
// CHECK-NEXT:    qrt.prefetch %v[%col] {tag = 3 : i64} : memref<?xf32>
// GENERIC-LABEL: "func.func"() <{sym_name = "prefetch"
// GENERIC:         "qrt.prefetch"(%w, %row, %col) : (memref<?x2304xi8>, index, index) -> ()
func.func @prefetch(%w: memref<?x2304xi8>, %v: memref<?xf32>, %row: index, %col: index) {
  qrt.prefetch %w[%row, %col] : memref<?x2304xi8>
  qrt.prefetch %v[%col] {tag = 3 : i64} : memref<?xf32>
  func.return
}

// -----

// Integer dot products: unsigned codes by signed values, four bytes per i32 lane.
// CHECK-LABEL: func.func @dot
// CHECK:         %r = qrt.dot_u8i8 %acc, %codes, %values {code_bits = 4 : i64} : vector<32xi8> into vector<8xi32>
// CHECK-NEXT:    %r2 = qrt.dot_u8i8 %wide, %wcodes, %wvalues {code_bits = 8 : i64} : vector<64xi8> into vector<16xi32>
// GENERIC-LABEL: "func.func"() <{sym_name = "dot"
// GENERIC:         %r = "qrt.dot_u8i8"(%acc, %codes, %values) <{code_bits = 4 : i64}> : (vector<8xi32>, vector<32xi8>, vector<32xi8>) -> vector<8xi32>
func.func @dot(%acc: vector<8xi32>, %codes: vector<32xi8>, %values: vector<32xi8>, %wide: vector<16xi32>, %wcodes: vector<64xi8>, %wvalues: vector<64xi8>) -> vector<8xi32> {
  %r = qrt.dot_u8i8 %acc, %codes, %values {code_bits = 4 : i64} : vector<32xi8> into vector<8xi32>
  %r2 = qrt.dot_u8i8 %wide, %wcodes, %wvalues {code_bits = 8 : i64} : vector<64xi8> into vector<16xi32>
  func.return %r : vector<8xi32>
}

// -----

// Scaled dot products: each lane's four-byte dot times its 16-bit scale.
// CHECK-LABEL: func.func @scaled_dot
// CHECK:         %r = qrt.dot_u8i8_scaled %acc, %codes, %values, %scales {code_bits = 6 : i64} : vector<64xi8>, vector<16xi16> into vector<16xi32>
// GENERIC-LABEL: "func.func"() <{sym_name = "scaled_dot"
// GENERIC:         %r = "qrt.dot_u8i8_scaled"(%acc, %codes, %values, %scales) <{code_bits = 6 : i64}> : (vector<16xi32>, vector<64xi8>, vector<64xi8>, vector<16xi16>) -> vector<16xi32>
func.func @scaled_dot(%acc: vector<16xi32>, %codes: vector<64xi8>, %values: vector<64xi8>, %scales: vector<16xi16>) -> vector<16xi32> {
  %r = qrt.dot_u8i8_scaled %acc, %codes, %values, %scales {code_bits = 6 : i64} : vector<64xi8>, vector<16xi16> into vector<16xi32>
  func.return %r : vector<16xi32>
}
