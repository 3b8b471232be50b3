// RUN: quantir-opt %s --split-input-file -p share-launches | filecheck %s

// Two ops quantize the same x into fresh buffers with the same kernel: the
// second launch and its allocation go, its reader takes the first buffer,
// which is freed where the second one was. Equal sizes become one value.
func.func @shared(%x: memref<?x32xf32>, %wa: memref<4x32xi8>, %wb: memref<4x32xi8>, %ya: memref<?x4xf32>, %yb: memref<?x4xf32>) {
  %c0 = arith.constant 0 : index
  %m = memref.dim %x, %c0 : memref<?x32xf32>
  %q0 = memref.alloc(%m) : memref<?x32xi8>
  qrt.launch @quant(%x, %q0) range(%m) : memref<?x32xf32>, memref<?x32xi8>
  qrt.launch @matmul(%q0, %wa, %ya) range(%m) : memref<?x32xi8>, memref<4x32xi8>, memref<?x4xf32>
  memref.dealloc %q0 : memref<?x32xi8>
  %c0b = arith.constant 0 : index
  %m1 = memref.dim %x, %c0b : memref<?x32xf32>
  %q1 = memref.alloc(%m1) : memref<?x32xi8>
  qrt.launch @quant(%x, %q1) range(%m1) : memref<?x32xf32>, memref<?x32xi8>
  qrt.launch @matmul(%q1, %wb, %yb) range(%m1) : memref<?x32xi8>, memref<4x32xi8>, memref<?x4xf32>
  memref.dealloc %q1 : memref<?x32xi8>
  func.return
}
func.func @quant(%lo: index, %hi: index, %x: memref<?x32xf32>, %q: memref<?x32xi8>) attributes {qrt.kernel} {
  %c0 = arith.constant 0 : index
  %v = vector.load %x[%lo, %c0] : memref<?x32xf32>, vector<32xf32>
  %i = arith.fptosi %v : vector<32xf32> to vector<32xi8>
  vector.store %i, %q[%lo, %c0] : memref<?x32xi8>, vector<32xi8>
  func.return
}
func.func @matmul(%lo: index, %hi: index, %q: memref<?x32xi8>, %w: memref<4x32xi8>, %y: memref<?x4xf32>) attributes {qrt.kernel} {
  %c0 = arith.constant 0 : index
  %a = memref.load %q[%lo, %c0] : memref<?x32xi8>
  %b = memref.load %w[%c0, %c0] : memref<4x32xi8>
  %p = arith.muli %a, %b : i8
  %f = arith.sitofp %p : i8 to f32
  memref.store %f, %y[%lo, %c0] : memref<?x4xf32>
  func.return
}

// CHECK-LABEL: func.func @shared(
// CHECK-NEXT:    %c0 = arith.constant 0 : index
// CHECK-NEXT:    %m = memref.dim %x, %c0 : memref<?x32xf32>
// CHECK-NEXT:    %q0 = memref.alloc(%m) : memref<?x32xi8>
// CHECK-NEXT:    qrt.launch @quant(%x, %q0) range(%m)
// CHECK-NEXT:    qrt.launch @matmul(%q0, %wa, %ya) range(%m)
// CHECK-NEXT:    qrt.launch @matmul(%q0, %wb, %yb) range(%m)
// CHECK-NEXT:    memref.dealloc %q0 : memref<?x32xi8>
// CHECK-NEXT:    func.return

// -----

// A launch in between writes x: the second quantization sees other values
// and stays. The in-place kernel's buffer is written twice, so that launch is
// never a candidate either.
func.func @input_written(%x: memref<?x32xf32>, %w: memref<4x32xi8>, %ya: memref<?x4xf32>, %yb: memref<?x4xf32>) {
  %c0 = arith.constant 0 : index
  %m = memref.dim %x, %c0 : memref<?x32xf32>
  %q0 = memref.alloc(%m) : memref<?x32xi8>
  qrt.launch @quant(%x, %q0) range(%m) : memref<?x32xf32>, memref<?x32xi8>
  qrt.launch @matmul(%q0, %w, %ya) range(%m) : memref<?x32xi8>, memref<4x32xi8>, memref<?x4xf32>
  memref.dealloc %q0 : memref<?x32xi8>
  qrt.launch @double(%x) range(%m) : memref<?x32xf32>
  %q1 = memref.alloc(%m) : memref<?x32xi8>
  qrt.launch @quant(%x, %q1) range(%m) : memref<?x32xf32>, memref<?x32xi8>
  qrt.launch @matmul(%q1, %w, %yb) range(%m) : memref<?x32xi8>, memref<4x32xi8>, memref<?x4xf32>
  memref.dealloc %q1 : memref<?x32xi8>
  func.return
}
func.func @double(%lo: index, %hi: index, %x: memref<?x32xf32>) attributes {qrt.kernel} {
  %c0 = arith.constant 0 : index
  %v = memref.load %x[%lo, %c0] : memref<?x32xf32>
  %d = arith.addf %v, %v : f32
  memref.store %d, %x[%lo, %c0] : memref<?x32xf32>
  func.return
}
func.func @quant(%lo: index, %hi: index, %x: memref<?x32xf32>, %q: memref<?x32xi8>) attributes {qrt.kernel} {
  %c0 = arith.constant 0 : index
  %v = memref.load %x[%lo, %c0] : memref<?x32xf32>
  %i = arith.fptosi %v : f32 to i8
  memref.store %i, %q[%lo, %c0] : memref<?x32xi8>
  func.return
}
func.func @matmul(%lo: index, %hi: index, %q: memref<?x32xi8>, %w: memref<4x32xi8>, %y: memref<?x4xf32>) attributes {qrt.kernel} {
  %c0 = arith.constant 0 : index
  %a = memref.load %q[%lo, %c0] : memref<?x32xi8>
  %f = arith.sitofp %a : i8 to f32
  memref.store %f, %y[%lo, %c0] : memref<?x4xf32>
  func.return
}

// CHECK-LABEL: func.func @input_written(
// CHECK:         qrt.launch @quant(%x, %q0)
// CHECK:         qrt.launch @double(%x)
// CHECK-NEXT:    %q1 = memref.alloc(%m)
// CHECK-NEXT:    qrt.launch @quant(%x, %q1)
// CHECK-NEXT:    qrt.launch @matmul(%q1, %w, %yb)
// CHECK-NEXT:    memref.dealloc %q1

// -----

// The first quantized buffer is written again after its launch (by an
// in-place kernel): it no longer holds the quantized x, so nothing reuses it.
// A launch over another range, or of another kernel, is other work.
func.func @not_equal(%x: memref<?x32xf32>, %n: index) {
  %c0 = arith.constant 0 : index
  %m = memref.dim %x, %c0 : memref<?x32xf32>
  %q0 = memref.alloc(%m) : memref<?x32xi8>
  qrt.launch @quant(%x, %q0) range(%m) : memref<?x32xf32>, memref<?x32xi8>
  qrt.launch @negate(%q0) range(%m) : memref<?x32xi8>
  memref.dealloc %q0 : memref<?x32xi8>
  %q1 = memref.alloc(%m) : memref<?x32xi8>
  qrt.launch @quant(%x, %q1) range(%m) : memref<?x32xf32>, memref<?x32xi8>
  %q2 = memref.alloc(%m) : memref<?x32xi8>
  qrt.launch @quant(%x, %q2) range(%n) : memref<?x32xf32>, memref<?x32xi8>
  %q3 = memref.alloc(%m) : memref<?x32xi8>
  qrt.launch @quant2(%x, %q3) range(%m) : memref<?x32xf32>, memref<?x32xi8>
  memref.dealloc %q1 : memref<?x32xi8>
  memref.dealloc %q2 : memref<?x32xi8>
  memref.dealloc %q3 : memref<?x32xi8>
  func.return
}
func.func @negate(%lo: index, %hi: index, %q: memref<?x32xi8>) attributes {qrt.kernel} {
  %c0 = arith.constant 0 : index
  %v = memref.load %q[%lo, %c0] : memref<?x32xi8>
  %z = arith.constant 0 : i8
  %d = arith.subi %z, %v : i8
  memref.store %d, %q[%lo, %c0] : memref<?x32xi8>
  func.return
}
func.func @quant(%lo: index, %hi: index, %x: memref<?x32xf32>, %q: memref<?x32xi8>) attributes {qrt.kernel} {
  %c0 = arith.constant 0 : index
  %v = memref.load %x[%lo, %c0] : memref<?x32xf32>
  %i = arith.fptosi %v : f32 to i8
  memref.store %i, %q[%lo, %c0] : memref<?x32xi8>
  func.return
}
func.func @quant2(%lo: index, %hi: index, %x: memref<?x32xf32>, %q: memref<?x32xi8>) attributes {qrt.kernel} {
  %c0 = arith.constant 0 : index
  %v = memref.load %x[%lo, %c0] : memref<?x32xf32>
  %i = arith.fptoui %v : f32 to i8
  memref.store %i, %q[%lo, %c0] : memref<?x32xi8>
  func.return
}

// CHECK-LABEL: func.func @not_equal(
// CHECK:         qrt.launch @quant(%x, %q0) range(%m)
// CHECK-NEXT:    qrt.launch @negate(%q0) range(%m)
// CHECK-NEXT:    memref.dealloc %q0
// CHECK-NEXT:    %q1 = memref.alloc(%m)
// CHECK-NEXT:    qrt.launch @quant(%x, %q1) range(%m)
// CHECK-NEXT:    %q2 = memref.alloc(%m)
// CHECK-NEXT:    qrt.launch @quant(%x, %q2) range(%n)
// CHECK-NEXT:    %q3 = memref.alloc(%m)
// CHECK-NEXT:    qrt.launch @quant2(%x, %q3) range(%m)

// -----

// Overlapping lifetimes (the first buffer is freed after the second launch):
// the first free stays and the second goes. A buffer read through a view in
// the kernel is still only read.
func.func @nested(%x: memref<?x32xf32>, %y: memref<?x32xf32>) {
  %c0 = arith.constant 0 : index
  %m = memref.dim %x, %c0 : memref<?x32xf32>
  %q0 = memref.alloc(%m) : memref<?x32xi8>
  qrt.launch @quant(%x, %q0) range(%m) : memref<?x32xf32>, memref<?x32xi8>
  %q1 = memref.alloc(%m) : memref<?x32xi8>
  qrt.launch @quant(%x, %q1) range(%m) : memref<?x32xf32>, memref<?x32xi8>
  qrt.launch @add(%q0, %q1, %y) range(%m) : memref<?x32xi8>, memref<?x32xi8>, memref<?x32xf32>
  memref.dealloc %q1 : memref<?x32xi8>
  memref.dealloc %q0 : memref<?x32xi8>
  func.return
}
func.func @quant(%lo: index, %hi: index, %x: memref<?x32xf32>, %q: memref<?x32xi8>) attributes {qrt.kernel} {
  %c0 = arith.constant 0 : index
  %flat = memref.collapse_shape %x [[0, 1]] : memref<?x32xf32> into memref<?xf32>
  %v = memref.load %flat[%lo] : memref<?xf32>
  %i = arith.fptosi %v : f32 to i8
  memref.store %i, %q[%lo, %c0] : memref<?x32xi8>
  func.return
}
func.func @add(%lo: index, %hi: index, %a: memref<?x32xi8>, %b: memref<?x32xi8>, %y: memref<?x32xf32>) attributes {qrt.kernel} {
  %c0 = arith.constant 0 : index
  %u = memref.load %a[%lo, %c0] : memref<?x32xi8>
  %v = memref.load %b[%lo, %c0] : memref<?x32xi8>
  %s = arith.addi %u, %v : i8
  %f = arith.sitofp %s : i8 to f32
  memref.store %f, %y[%lo, %c0] : memref<?x32xf32>
  func.return
}

// CHECK-LABEL: func.func @nested(
// CHECK:         %q0 = memref.alloc(%m)
// CHECK-NEXT:    qrt.launch @quant(%x, %q0) range(%m)
// CHECK-NEXT:    qrt.launch @add(%q0, %q0, %y) range(%m)
// CHECK-NEXT:    memref.dealloc %q0
// CHECK-NEXT:    func.return

// -----

// The second quantized buffer is negated in place after its launch: giving
// it the first one's buffer would change what the first one's readers see.
func.func @later_written(%x: memref<?x32xf32>, %y: memref<?x32xf32>) {
  %c0 = arith.constant 0 : index
  %m = memref.dim %x, %c0 : memref<?x32xf32>
  %q0 = memref.alloc(%m) : memref<?x32xi8>
  qrt.launch @quant(%x, %q0) range(%m) : memref<?x32xf32>, memref<?x32xi8>
  %q1 = memref.alloc(%m) : memref<?x32xi8>
  qrt.launch @quant(%x, %q1) range(%m) : memref<?x32xf32>, memref<?x32xi8>
  qrt.launch @negate(%q1) range(%m) : memref<?x32xi8>
  qrt.launch @add(%q0, %q1, %y) range(%m) : memref<?x32xi8>, memref<?x32xi8>, memref<?x32xf32>
  memref.dealloc %q1 : memref<?x32xi8>
  memref.dealloc %q0 : memref<?x32xi8>
  func.return
}
func.func @quant(%lo: index, %hi: index, %x: memref<?x32xf32>, %q: memref<?x32xi8>) attributes {qrt.kernel} {
  %c0 = arith.constant 0 : index
  %v = memref.load %x[%lo, %c0] : memref<?x32xf32>
  %i = arith.fptosi %v : f32 to i8
  memref.store %i, %q[%lo, %c0] : memref<?x32xi8>
  func.return
}
func.func @negate(%lo: index, %hi: index, %q: memref<?x32xi8>) attributes {qrt.kernel} {
  %c0 = arith.constant 0 : index
  %v = memref.load %q[%lo, %c0] : memref<?x32xi8>
  %z = arith.constant 0 : i8
  %d = arith.subi %z, %v : i8
  memref.store %d, %q[%lo, %c0] : memref<?x32xi8>
  func.return
}
func.func @add(%lo: index, %hi: index, %a: memref<?x32xi8>, %b: memref<?x32xi8>, %y: memref<?x32xf32>) attributes {qrt.kernel} {
  %c0 = arith.constant 0 : index
  %u = memref.load %a[%lo, %c0] : memref<?x32xi8>
  %v = memref.load %b[%lo, %c0] : memref<?x32xi8>
  %s = arith.addi %u, %v : i8
  %f = arith.sitofp %s : i8 to f32
  memref.store %f, %y[%lo, %c0] : memref<?x32xf32>
  func.return
}

// CHECK-LABEL: func.func @later_written(
// CHECK:         qrt.launch @quant(%x, %q0) range(%m)
// CHECK-NEXT:    %q1 = memref.alloc(%m)
// CHECK-NEXT:    qrt.launch @quant(%x, %q1) range(%m)
// CHECK-NEXT:    qrt.launch @negate(%q1) range(%m)
// CHECK-NEXT:    qrt.launch @add(%q0, %q1, %y) range(%m)
