/// A side path on the model's linear layers (LoRA): for each adapted matrix W of block `layer`
/// (`slot` ∈ qkvW, denseW, fc1W, fc2W; llama: qW…downW), the forward pass calls `forward` right after
/// y = x·Wᵀ (before the bias and activation), and the backward pass calls `backward` right after
/// dx = dy·W, so the adapter adds its own contribution to dx and accumulates its parameters'
/// gradients. x is [rows, in]; y (and dy) are the matrix's [rows, out] columns inside a row of
/// `ldy` floats (llama's q, k and v sit side by side in one fused product).
public protocol LinearAdapter: AnyObject {
    func adapts(layer: Int, slot: ParameterTable.Slot) -> Bool
    /// y += adapter(x).
    func forward(layer: Int, slot: ParameterTable.Slot, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, ldy: Int, rows: Int)
    /// Accumulates the adapter's parameter gradients; dx (nil when no gradient is needed below)
    /// += d adapter(x) / dx · dy.
    func backward(layer: Int, slot: ParameterTable.Slot, x: UnsafePointer<Float>, dy: UnsafePointer<Float>, lddy: Int,
                  dx: UnsafeMutablePointer<Float>?, rows: Int)
}
