/// A side path on the model's linear layers (LoRA): for each adapted matrix W of block `layer`
/// (`slot` ∈ qkvW, denseW, fc1W, fc2W), the forward pass calls `forward` right after y = x·Wᵀ
/// (before the bias and activation), and the backward pass calls `backward` right after
/// dx = dy·W, so the adapter adds its own contribution to dx and accumulates its parameters'
/// gradients. x and y are [rows, in] and [rows, out], row-major.
public protocol LinearAdapter: AnyObject {
    func adapts(layer: Int, slot: ParameterTable.Slot) -> Bool
    /// y += adapter(x).
    func forward(layer: Int, slot: ParameterTable.Slot, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, rows: Int)
    /// Accumulates the adapter's parameter gradients; dx (nil when no gradient is needed below)
    /// += d adapter(x) / dx · dy.
    func backward(layer: Int, slot: ParameterTable.Slot, x: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                  dx: UnsafeMutablePointer<Float>?, rows: Int)
}
