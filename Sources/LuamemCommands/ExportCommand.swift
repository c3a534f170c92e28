import ArgumentParser
import Foundation
import LuamemStore

/// `luamem export`: the sites of a run's latest snapshot, for flame graphs and other tools.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a run's sites as folded stacks (flame graphs), JSON, CSV or a pprof profile.",
        discussion: """
            Folded stacks are one line per call stack, outermost frame first, frames as \
            file:line joined by ';', then a space and the weight: `main.lua:40;util.lua:12 4096`. \
            A C function the allocation happened in is the last frame. Feed them to \
            flamegraph.pl, inferno or speedscope. Stacks have as many frames as the run's \
            --depth. The figures are those of the latest snapshot of each state, added \
            together. pprof writes a gzipped profile (profile.proto) for go tool pprof, \
            Pyroscope and other pprof readers: sample types alloc_objects, alloc_space, \
            inuse_objects and inuse_space (the default; live bytes after GC, or at the snapshot \
            with --current), stacks leaf first, the object type and the state as labels.
            """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case folded, json, csv, pprof
    }

    enum Weight: String, ExpressibleByArgument, CaseIterable {
        case live, alloc
    }

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var selection: SelectionOptions

    @Option(help: "Output format: folded, json, csv or pprof.")
    var format: Format = .folded

    @Option(name: [.short, .customLong("output")], help: "Write to this file; - is standard output.")
    var output = "-"

    @Flag(help: "pprof: in-use figures at the snapshot (garbage included), not after GC.")
    var current = false

    @Option(help: "Weight of a stack: live bytes, or bytes allocated since tracking began.")
    var weight: Weight = .live

    func run() throws {
        let store = try openStore(database)
        let run = try selection.run(in: store)
        let selected = try selection.stateFilter(store, runID: run.id)
        let heads = try store.headSnapshots(runID: run.id, untilMs: nil).filter {
            selected($0.stateID)
        }
        let frames = try store.frames()
        let typeNames = try store.objectTypeNames()
        if format == .pprof && output == "-" && isatty(STDOUT_FILENO) == 1 {
            throw CommandError("a pprof profile is binary: give -o FILE (or redirect the output)")
        }
        let target = output == "-" ? nil : try ReportCommand.writableFile(output)
        var rows: [(stack: String, info: SiteInfo, type: String, figures: Figures)] = []
        var entries: [PprofProfile.Entry] = []
        for head in heads {
            let state = try store.stateName(id: head.stateID)
            for (info, entry) in try store.namedFigures(at: head) {
                rows.append(
                    (
                        Self.stack(info, frames).joined(separator: ";"), info,
                        typeNames[entry.type] ?? "?", entry.figures
                    ))
                entries.append(
                    .init(state: state, info: info, type: typeNames[entry.type] ?? "?",
                        figures: entry.figures))
            }
        }
        var text = ""
        switch format {
        case .pprof:
            let latest = heads.map(\.timeMs).max() ?? run.startedMs
            let options = try store.runFacts(id: run.id).options
            let profile = PprofProfile(
                entries: entries, frames: frames, afterGC: !current,
                period: Self.sampleInterval(options), timeMs: latest,
                durationMs: latest - run.startedMs,
                comments: [
                    "luamem \(try selection.describe(run, in: store))",
                    "latest snapshot of each state; inuse is live bytes "
                        + (current ? "at the snapshot" : "after GC"),
                ])
            let data = try profile.data()
            if let target {
                do { try data.write(to: URL(fileURLWithPath: target)) } catch {
                    throw CommandError("cannot write \(output): \(error.localizedDescription)")
                }
            } else {
                FileHandle.standardOutput.write(data)
            }
            return
        case .folded:
            var weights: [String: Int64] = [:]
            for row in rows {
                weights[row.stack] = (weights[row.stack] ?? 0).saturatingAdd(
                    weight == .live ? row.figures.liveBytes : row.figures.allocBytes)
            }
            for (stack, value) in weights.sorted(by: { $0.key < $1.key }) where value > 0 {
                text += "\(stack) \(value)\n"
            }
        case .json, .csv:
            var listing = Listing(
                columns: [
                    "stack", "source", "line", "function", "c_function", "type", "live_bytes",
                    "live_count", "gc_live_bytes", "alloc_bytes", "alloc_count",
                ].map { Listing.Column(key: $0, title: $0, rightAligned: false) })
            for row in rows.sorted(by: { $0.figures.liveBytes > $1.figures.liveBytes }) {
                listing.rows.append([
                    .text(row.stack), .text(row.info.file), .integer(row.info.line),
                    .text(row.info.function),
                    .text(row.info.cfunction.isEmpty ? nil : row.info.cfunction),
                    .text(row.type), .integer(row.figures.liveBytes),
                    .integer(row.figures.liveCount),
                    .integer(row.figures.gcLiveBytes), .integer(row.figures.allocBytes),
                    .integer(row.figures.allocCount),
                ])
            }
            text = listing.render(format == .json ? .json : .csv)
        }
        if let target {
            do { try text.write(toFile: target, atomically: true, encoding: .utf8) } catch {
                throw CommandError("cannot write \(output): \(error.localizedDescription)")
            }
        } else {
            print(text, terminator: "")
        }
    }

    /// The run's sampling interval in bytes (`"sample"` in its options), 0 when none.
    static func sampleInterval(_ options: String) -> Int64 {
        guard let data = options.data(using: .utf8),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let sample = object["sample"] as? NSNumber
        else { return 0 }
        return max(0, sample.int64Value)
    }

    /// A site's frames, outermost first, each "file:line", then its C function if any;
    /// semicolons and spaces, which folded stacks use as separators, are replaced.
    static func stack(_ info: SiteInfo, _ frames: [Int64: FrameInfo]) -> [String] {
        var parts = info.stack.split(separator: ",").compactMap { Int64($0) }.reversed().map { id in
            frames[id].map { SiteKey.isLineless($0.file) ? $0.file : "\($0.file):\($0.line)" } ?? "?"
        }
        if !info.cfunction.isEmpty { parts.append(info.cfunction) }
        // One line per stack, frames split by ";", the weight after the last space.
        return parts.map {
            Listing.printable($0).replacingOccurrences(of: ";", with: ":")
                .replacingOccurrences(of: " ", with: "_")
        }
    }
}
