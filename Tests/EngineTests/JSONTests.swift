import Testing
@testable import Engine

@Suite struct JSONTests {
    @Test func roundTripKeepsOrderAndValues() throws {
        let text = #"{"b": 1, "a": [1.5, -2, "x\n\"y\"", true, null], "c": {"d": 1e-5}}"#
        let v = try JSON.parse(text, what: "test")
        #expect(v["b"] == .number(1))
        let again = try JSON.parse(v.serialized(), what: "test")
        #expect(again == v)
        #expect(v.serialized().hasPrefix(#"{"b":1,"a":[1.5,-2,"x\n\"y\"",true,null]"#))
    }

    @Test func malformedTextNamesLineAndColumn() {
        do {
            _ = try JSON.parse("{\n  \"a\": 1,\n  \"b\" 2}", what: "dataset spec")
            Issue.record("expected an error")
        } catch {
            #expect(error.status == .invalid)
            #expect(error.message.contains("line 3"))
        }
    }

    @Test func readerChecksTypesRangesAndUnknownKeys() throws {
        var r = try JSONReader(text: #"{"subjects": -5}"#, path: "dataset spec")
        #expect(throws: EngineError.self) { _ = try r.int("subjects", default: 10, min: 1) }
        var r2 = try JSONReader(text: #"{"subjcts": 5}"#, path: "dataset spec")
        _ = try r2.int("subjects", default: 10, min: 1)
        do { try r2.finish(); Issue.record("expected an error") } catch {
            #expect(error.message.contains("unknown key 'subjcts'"))
        }
        var r3 = try JSONReader(text: #"{"subjects": "many"}"#, path: "dataset spec")
        #expect(throws: EngineError.self) { _ = try r3.int("subjects", default: 10) }
        var r5 = try JSONReader(text: #"{"learning_rate": NaN, "epochs": Infinity}"#, path: "training spec")
        do { _ = try r5.double("learning_rate", default: 1); Issue.record("expected an error") } catch {
            #expect(error.message.contains("learning_rate must be finite"))
        }
        #expect(throws: EngineError.self) { _ = try r5.int("epochs", default: 1) }
        var r4 = try JSONReader(text: "", path: "dataset spec")
        #expect(try r4.int("subjects", default: 10) == 10)
        try r4.finish()
    }
}
