public enum Version {
    /// Keep in step with BH_VERSION in include/behemoth.h (a test checks).
    public static let string = "0.1.0"
}
