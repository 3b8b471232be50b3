// RUN: quantir-opt %s -p "lower-quant-to-loops{outline=true}" | filecheck %s
// RUN: quantir-opt %s -p "lower-quant-to-loops{vectorize=false m_tile=1 outline=true}" | filecheck %s --check-prefix=SCALAR
// RUN: quantir-opt %s -p "lower-quant-to-loops{outline=true},share-launches" | filecheck %s --check-prefix=SHARED

// outline=true: the loops of each distinct op are built once and outlined;
// the equal ops (same encoding and operand types, other buffers) launch the
// same kernels: the x-quantizing kernel and the matmul kernel of the first
// q4_k op. The q6_k op (x sums per 16, not 32) gets kernels of its own.
func.func @layers(%x: memref<?x256xf32>, %a: memref<32x144xi8>, %b: memref<32x144xi8>, %c: memref<32x210xi8>, %ya: memref<?x32xf32>, %yb: memref<?x32xf32>, %yc: memref<?x32xf32>) {
  quant.qmatmul #quant.encoding<q4_k> %x, %a outs(%ya) : (memref<?x256xf32>, memref<32x144xi8>, memref<?x32xf32>) -> ()
  quant.qmatmul #quant.encoding<q4_k> %x, %b outs(%yb) : (memref<?x256xf32>, memref<32x144xi8>, memref<?x32xf32>) -> ()
  quant.qmatmul #quant.encoding<q6_k> %x, %c outs(%yc) : (memref<?x256xf32>, memref<32x210xi8>, memref<?x32xf32>) -> ()
  func.return
}

// CHECK-LABEL: func.func @layers(
// CHECK-NOT:     scf.parallel
// CHECK:         qrt.launch @layers_kernel0(%x,
// CHECK:         qrt.launch @layers_kernel1({{.*}}, %a,
// CHECK-NOT:     scf.parallel
// CHECK:         qrt.launch @layers_kernel0(%x,
// CHECK:         qrt.launch @layers_kernel1({{.*}}, %b,
// CHECK-NOT:     scf.parallel
// CHECK:         qrt.launch @layers_kernel2(%x,
// CHECK:         qrt.launch @layers_kernel3({{.*}}, %c,
// CHECK:         func.return
// CHECK-NEXT:  }
// CHECK-NEXT:  func.func @layers_kernel3({{.*}}) attributes {qrt.kernel}
// CHECK:       func.func @layers_kernel2({{.*}}) attributes {qrt.kernel}
// CHECK:       func.func @layers_kernel1({{.*}}) attributes {qrt.kernel}
// CHECK:       func.func @layers_kernel0({{.*}}) attributes {qrt.kernel}
// CHECK-NOT:   func.func

// share-launches: the two q4_k ops quantize %x once (one launch of
// @layers_kernel0, its buffers read by both matmul launches); the q6_k op's
// x-quantizing kernel (sums per 16) is other work and stays.
// SHARED-LABEL: func.func @layers(
// SHARED:         qrt.launch @layers_kernel0(%x, [[XQ:%[0-9]+]], [[XD:%[0-9]+]], [[XS:%[0-9]+]])
// SHARED-NEXT:    arith.constant
// SHARED-NOT:     qrt.launch @layers_kernel0
// SHARED:         qrt.launch @layers_kernel1({{.*}}, %a, [[XD]], [[XQ]], [[XS]], %ya)
// SHARED-NEXT:    qrt.launch @layers_kernel1({{.*}}, %b, [[XD]], [[XQ]], [[XS]], %yb)
// SHARED-NEXT:    memref.dealloc [[XQ]]
// SHARED-NOT:     qrt.launch @layers_kernel0
// SHARED:         qrt.launch @layers_kernel2(%x,
// SHARED:         qrt.launch @layers_kernel3({{.*}}, %c,
// SHARED:         func.return

// SCALAR-LABEL: func.func @layers(
// SCALAR-NOT:     scf.parallel
// SCALAR:         qrt.launch @layers_kernel0({{.*}}%a
// SCALAR:         qrt.launch @layers_kernel0({{.*}}%b
// SCALAR:         qrt.launch @layers_kernel1({{.*}}%c
// SCALAR:         func.return
// SCALAR-NEXT:  }
// SCALAR-NEXT:  func.func @layers_kernel1({{.*}}) attributes {qrt.kernel}
// SCALAR:       func.func @layers_kernel0({{.*}}) attributes {qrt.kernel}
// SCALAR-NOT:   func.func
