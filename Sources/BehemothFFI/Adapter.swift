import CBehemoth
import Engine

// LoRA adapter sets as values (behemoth.h, "Adapters").

final class AdapterHandle {
    var set: AdapterSet
    /// Set by the first bh_adapter_apply: from then on the factors are fixed, so that
    /// bh_adapter_remove takes off exactly what was put on.
    var applied = false
    init(_ set: AdapterSet) { self.set = set }
}

func adapter(_ a: OpaquePointer?, _ fn: String) throws(EngineError) -> AdapterSet {
    try Handle.get(a, AdapterHandle.self, fn, "adapter").set
}

@c @implementation public func bh_edit_adapter(_ e: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_edit_adapter"
        let o = try clearOut(out, fn)
        let s = try editSession(e, fn)
        guard let r = s.result else { throw .misuse("\(fn): call bh_edit_end first") }
        guard !r.adapters.isEmpty else { throw .invalid("\(fn): method \"\(s.experiment.method.method)\" leaves no adapters (LoRA does)") }
        o.pointee = Handle.make(AdapterHandle(try AdapterSet(r.adapters)))
    }
}

@c @implementation public func bh_adapter_save(_ a: OpaquePointer?, _ path: UnsafePointer<CChar>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_adapter_save"
        let set = try adapter(a, fn)
        let p = try cString(path, fn, "path")
        guard !p.isEmpty else { throw .invalid("\(fn): path is empty") }
        try set.save(p)
    }
}

@c @implementation public func bh_adapter_load(_ path: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_adapter_load"
        let o = try clearOut(out, fn)
        let p = try cString(path, fn, "path")
        guard !p.isEmpty else { throw .invalid("\(fn): path is empty") }
        o.pointee = Handle.make(AdapterHandle(try AdapterSet.load(p)))
    }
}

@c @implementation public func bh_adapter_info(_ a: OpaquePointer?, _ json_out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_adapter_info"
        try returnString(try adapter(a, fn).info().serialized(), json_out, fn)
    }
}

@c @implementation public func bh_adapter_apply(_ m: OpaquePointer?, _ a: OpaquePointer?, _ merge: Int32) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_adapter_apply"
        let mm = try model(m, fn)
        let h = try Handle.get(a, AdapterHandle.self, fn, "adapter")
        if merge != 0 { try h.set.merge(into: mm) } else { try h.set.attach(to: mm) }
        h.applied = true
    }
}

@c @implementation public func bh_adapter_remove(_ m: OpaquePointer?, _ a: OpaquePointer?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_adapter_remove"
        let mm = try model(m, fn)
        let set = try adapter(a, fn)
        if set.isAttached(to: mm) { try set.detach(from: mm) } else { try set.merge(into: mm, sign: -1) }
    }
}

@c @implementation public func bh_adapter_create(_ spec_json: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_adapter_create"
        let o = try clearOut(out, fn)
        let spec = try cString(spec_json, fn, "spec_json")
        o.pointee = Handle.make(AdapterHandle(try AdapterSet(spec: spec, what: "\(fn): adapter spec")))
    }
}

@c @implementation public func bh_adapter_set_factor(_ a: OpaquePointer?, _ tensor: UnsafePointer<CChar>?, _ factor: UnsafePointer<CChar>?,
                                                     _ values: UnsafePointer<Float>?, _ count: Int64) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_adapter_set_factor"
        let h = try Handle.get(a, AdapterHandle.self, fn, "adapter")
        let t = try cString(tensor, fn, "tensor")
        let w = try cString(factor, fn, "factor")
        guard !h.applied else {
            throw .misuse("\(fn): the adapter has been applied to a model; its factors are fixed from then on (create another adapter)")
        }
        _ = try h.set.factorShape(t, w, fn)       // names checked before the values are looked at
        try h.set.setFactor(t, w, try inputBuffer(values, count, fn, "values"), fn)
    }
}

@c @implementation public func bh_adapter_factor(_ a: OpaquePointer?, _ tensor: UnsafePointer<CChar>?, _ factor: UnsafePointer<CChar>?,
                                                 _ buffer: UnsafeMutablePointer<Float>?, _ capacity: Int64, _ count: UnsafeMutablePointer<Int64>?) -> Int32 {
    exported { () throws(EngineError) in
        let fn = "bh_adapter_factor"
        let set = try adapter(a, fn)
        try copyOut(try set.factor(try cString(tensor, fn, "tensor"), try cString(factor, fn, "factor"), fn), buffer, capacity, count, fn)
    }
}

@c @implementation public func bh_adapter_free(_ a: OpaquePointer?) { Handle.free(a, AdapterHandle.self) }
