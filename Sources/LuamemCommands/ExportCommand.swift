import ArgumentParser
import Foundation
import LuamemStore

/// `luamem export`: the sites of a run's latest snapshot, for flame graphs and other tools.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a run's sites as folded stacks (flame graphs), JSON or CSV.",
        discussion: """
            Folded stacks are one line per call stack, outermost frame first, frames as \
            file:line joined by ';', then a space and the weight: `main.lua:40;util.lua:12 4096`. \
            A C function the allocation happened in is the last frame. Feed them to \
            flamegraph.pl, inferno or speedscope. Stacks have as many frames as the run's \
            --depth. The figures are those of the latest snapshot of each state, added \
            together.
            """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case folded, json, csv
    }

    enum Weight: String, ExpressibleByArgument, CaseIterable {
        case live, alloc
    }

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var selection: SelectionOptions

    @Option(help: "Output format: folded, json or csv.")
    var format: Format = .folded

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
        var rows: [(stack: String, info: SiteInfo, type: String, figures: Figures)] = []
        for head in heads {
            for (info, entry) in try store.namedFigures(at: head) {
                rows.append(
                    (
                        Self.stack(info, frames).joined(separator: ";"), info,
                        typeNames[entry.type] ?? "?", entry.figures
                    ))
            }
        }
        switch format {
        case .folded:
            var weights: [String: Int64] = [:]
            for row in rows {
                weights[row.stack] = (weights[row.stack] ?? 0).saturatingAdd(
                    weight == .live ? row.figures.liveBytes : row.figures.allocBytes)
            }
            for (stack, value) in weights.sorted(by: { $0.key < $1.key }) where value > 0 {
                print("\(stack) \(value)")
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
            print(listing.render(format == .json ? .json : .csv), terminator: "")
        }
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
