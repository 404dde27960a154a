// behemoth-files: the file tool that ships beside the library (the Python package's `behemoth`
// command line does the same through the library: `behemoth verify`, `behemoth upgrade`).
//   behemoth-files verify FILE...        checks each file (layout, attributes, content digest); prints JSON
//   behemoth-files upgrade OLD NEW       writes NEW in the current format (for files of Behemoth 0.1)
// The library also runs `behemoth-files upgrade --isolated OLD TMP` itself, in a separate process, to read
// files of format version 1 without exposing the caller's process to them (LegacyFiles.swift).
#if canImport(Glibc)
import Glibc
#endif
import Engine

let usage = """
usage: behemoth-files verify FILE...
       behemoth-files upgrade OLD NEW
"""

func fail(_ message: String, code: Int32) -> Never {
    fputs("behemoth-files: \(message)\n", stderr)
    exit(code)
}

var args = Array(CommandLine.arguments.dropFirst())
guard let command = args.first else { fail(usage, code: 2) }
args.removeFirst()

switch command {
case "upgrade":
    let isolated = args.first == "--isolated"
    if isolated { args.removeFirst() }
    guard args.count == 2 else { fail(usage, code: 2) }
    do {
        if isolated { try LegacyFiles.upgradeIsolated(args[0], to: args[1]) } else { try BehemothFile.upgrade(args[0], to: args[1]) }
    } catch {
        fail(error.message, code: error.status == .format ? 3 : 1)
    }
case "verify":
    guard !args.isEmpty else { fail(usage, code: 2) }
    var failed = false
    for path in args {
        do { print(try BehemothFile.verify(path).serialized()) } catch {
            fputs("behemoth-files: \(error.message)\n", stderr)
            failed = true
        }
    }
    exit(failed ? 1 : 0)
case "-h", "--help", "help":
    print(usage)
default:
    fail("unknown command '\(command)'\n\(usage)", code: 2)
}
