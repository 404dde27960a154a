import CBehemoth
import Engine

// LoRA adapter sets as values (behemoth.h, "Adapters").

final class AdapterHandle {
    let set: AdapterSet
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
        let set = try adapter(a, fn)
        if merge != 0 { try set.merge(into: mm) } else { try set.attach(to: mm) }
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

@c @implementation public func bh_adapter_free(_ a: OpaquePointer?) { Handle.free(a, AdapterHandle.self) }
