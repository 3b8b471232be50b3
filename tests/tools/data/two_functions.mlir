// Two functions: quantir-run needs --function to choose.
func.func @square(%a: tensor<2x4xf32>) -> tensor<2x4xf32> {
  %y = qnn.mul %a, %a : (tensor<2x4xf32>, tensor<2x4xf32>) -> tensor<2x4xf32>
  func.return %y : tensor<2x4xf32>
}
func.func @sum_and_product(%a: tensor<?x4xf32>, %b: tensor<?x4xf32>) -> (tensor<?x4xf32>, tensor<?x4xf32>) {
  %s = qnn.add %a, %b : (tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x4xf32>
  %p = qnn.mul %a, %b : (tensor<?x4xf32>, tensor<?x4xf32>) -> tensor<?x4xf32>
  func.return %s, %p : tensor<?x4xf32>, tensor<?x4xf32>
}
