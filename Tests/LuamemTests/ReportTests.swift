import Foundation
import LuamemStore
import Testing

/// `luamem report`, checked in a real headless browser.
@Suite struct ReportTests {
    static let chromium = "/usr/bin/chromium"

    private func browser(_ arguments: [String]) throws -> ProcessOutput {
        try #require(
            FileManager.default.fileExists(atPath: Self.chromium),
            "install chromium (scripts/install-deps.sh)")
        return try Harness.run(
            Self.chromium,
            ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"] + arguments)
    }

    @Test func reportLoadsOfflineAndShowsWhatQueryAndLeaksSay() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("m.db")
        try Harness.track(
            "patterns.lua", db: db, options: ["--interval", "0.05"], arguments: ["1.5"])
        let page = directory.appendingPathComponent("report.html")
        let written = try Harness.luamem(["report", "--db", db.path, "-o", page.path])
        #expect(written.status == 0, "\(written.stderr)")
        let html = try String(contentsOf: page, encoding: .utf8)
        for external in ["http://", "https://", "<script src", "<link", "@import"] {
            #expect(!html.contains(external), "the report must not load \(external)")
        }
        #expect(html.utf8.count < 200_000)

        let dom = try browser(["--dump-dom", page.absoluteString])
        #expect(dom.status == 0)
        #expect(dom.stdout.contains("data-ready=\"1\""), "the page's script did not finish")
        #expect(!dom.stdout.contains("data-error="), "script error: \(dom.stdout.prefix(300))")
        let cells = try #require(
            dom.stdout.firstMatch(
                of: try Regex(#"data-cells="(\d+)""#, as: (Substring, Substring).self)))
        #expect(Int(cells.1)! >= 3)

        // The numbers are those luamem query and luamem leaks print.
        let query = try Harness.jsonRows(
            Harness.luamem(["query", "--db", db.path, "--format", "json"]).stdout)
        let top = try #require(query.first)
        let row = try #require(
            dom.stdout.firstMatch(
                of: try Regex(
                    #"<tr class="site" data-site="([^"]+)" data-growth="(-?\d+)" data-live="(\d+)">"#,
                    as: (Substring, Substring, Substring, Substring).self))
        )
        #expect(String(row.1) == top["site"] as? String)
        #expect(Int(row.2) == top["growth_bytes"] as? Int)
        #expect(Int(row.3) == top["gc_live_bytes"] as? Int)
        let suspect = try #require(
            dom.stdout.firstMatch(
                of: try Regex(
                    #"<tr class="suspect" data-site="([^"]+)">"#, as: (Substring, Substring).self)))
        #expect(suspect.1.hasSuffix("patterns.lua:13"))

        let artifacts = Harness.repositoryRoot.appendingPathComponent(".build/artifacts")
        try FileManager.default.createDirectory(at: artifacts, withIntermediateDirectories: true)
        let screenshot = artifacts.appendingPathComponent("report.png")
        try? FileManager.default.removeItem(at: screenshot)
        _ = try browser([
            "--window-size=1000,1600", "--screenshot=\(screenshot.path)", page.absoluteString,
        ])
        let size =
            try FileManager.default.attributesOfItem(atPath: screenshot.path)[.size] as? Int ?? 0
        #expect(size > 10_000)
    }

    @Test func stacksGiveAnIcicleAndTypesAStackedChart() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("m.db")
        let server = Harness.repositoryRoot.appendingPathComponent("examples/server.lua").path
        let run = try Harness.luamem([
            "run", "--db", db.path, "--depth", "4", "--interval", "0.05", server, "100", "0.005",
        ])
        #expect(run.status == 0)
        let page = directory.appendingPathComponent("stacks.html")
        #expect(try Harness.luamem(["report", "--db", db.path, "-o", page.path]).status == 0)
        let dom = try browser(["--dump-dom", page.absoluteString]).stdout
        #expect(dom.contains("data-ready=\"1\""))
        #expect(dom.contains("<svg class=\"icicle\""))
        #expect(dom.contains("server.lua:65"))  // the main loop's line, outermost in the icicle
        for type in ["table", "string", "other"] {
            #expect(dom.components(separatedBy: "<title>\(type): ").count == 3, "no \(type) layers")
        }
        #expect(dom.contains("aria-label=\"after GC by type\"") && dom.contains("aria-label=\"live by type\""))

        let flat = directory.appendingPathComponent("flat.db")
        try Harness.track("sites.lua", db: flat)
        let flatPage = directory.appendingPathComponent("flat.html")
        #expect(try Harness.luamem(["report", "--db", flat.path, "-o", flatPage.path]).status == 0)
        #expect(try !String(contentsOf: flatPage, encoding: .utf8).contains("class=\"icicle\""))
    }

    @Test func reportShowsTheDiffOfTwoBuilds() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("nightly.db")
        let script = Harness.repositoryRoot.appendingPathComponent("examples/nightly.sh").path
        #expect(try Harness.run("/bin/bash", [script, Harness.luamemPath, db.path]).status == 1)
        let page = directory.appendingPathComponent("diff.html")
        let written = try Harness.luamem([
            "report", "--db", db.path, "--base", "build:v1", "--head", "build:v2", "-o", page.path,
        ])
        #expect(written.status == 0, "\(written.stderr)")
        let dom = try browser(["--dump-dom", page.absoluteString]).stdout
        #expect(dom.contains("data-ready=\"1\""))
        let diff = try Harness.jsonRows(
            Harness.luamem([
                "diff", "--db", db.path, "--base", "build:v1", "--head", "build:v2", "--format",
                "json",
            ]).stdout)
        let first = try #require(
            dom.firstMatch(
                of: try Regex(
                    #"<tr class="change" data-site="([^"]+)" data-change="(-?\d+)">"#,
                    as: (Substring, Substring, Substring).self)))
        #expect(String(first.1) == diff.first?["site"] as? String)
        #expect(Int(first.2) == diff.first?["change_bytes"] as? Int)
        // The answer to the question asked comes first: the diff before the treemap.
        let diffAt = try #require(dom.range(of: "id=\"diff\"")?.lowerBound)
        let treemapAt = try #require(dom.range(of: "id=\"treemap\"")?.lowerBound)
        #expect(diffAt < treemapAt)
        // Every object type has one colour in every chart.
        var colours: [String: Set<String>] = [:]
        for match in dom.matches(
            of: try Regex(#"data-type="([^"]+)" style="fill:([^"]+)""#, as: (Substring, Substring, Substring).self))
        {
            colours[String(match.1), default: []].insert(String(match.2))
        }
        #expect(!colours.isEmpty && colours.values.allSatisfy { $0.count == 1 }, "\(colours)")
        // Treemap colours carry growth, and the page says what [host] and [other sites] are.
        let fills = Set(
            dom.matches(of: try Regex(#"<rect class="cell" style="fill:([^"]+)""#, as: (Substring, Substring).self))
                .map { String($0.1) })
        #expect(fills.count > 2, "\(fills)")
        #expect(dom.contains("<b>[host]</b> is what was allocated") && dom.contains("<b>[other sites]</b>"))
        // A link only where the file exists: app.lua was named relative to the build directory.
        for link in dom.matches(of: try Regex(##"href="file://([^"#]+)#L"##, as: (Substring, Substring).self)) {
            #expect(FileManager.default.fileExists(atPath: String(link.1)), "\(link.1)")
        }
        let lonely = try Harness.luamem(["report", "--db", db.path, "--base", "build:v1"])
        #expect(lonely.status == 64 && lonely.stderr.contains("--base and --head go together"))
    }

    /// A 7-day run (60,480 snapshots 10 s apart, 200 sites) written with the store's
    /// own writer: the page stays small and loads.
    @Test func aLongRunGivesABoundedPage() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("long.db")
        let writer = try SnapshotWriter(store: Store.openForWriting(path: db.path))
        let start: Int64 = 1_790_000_000_000
        try writer.transaction {
            let run = try writer.beginRun(
                RunInfo(
                    build: "long", name: "server", host: "test", pid: 1, command: "generated",
                    luaVersion: "Lua 5.3.6", options: "{}", startedMs: start))
            let state = try writer.addState(runID: run, name: "main", startedMs: start)
            var sites: [Int64] = []
            for index in 0..<200 {
                let frame = try writer.frameID(
                    source: "@file\(index % 7).lua", line: Int64(index + 1), lineDefined: 1,
                    function: "f\(index % 13)")
                sites.append(try writer.siteID(frameIDs: [frame], cfunction: nil))
            }
            var live = [Int64](repeating: 1000, count: 200)
            for tick in 0..<60_480 {
                let time = start + Int64(tick) * 10_000
                for changed in 0..<5 {
                    let index = (tick * 5 + changed) % 200
                    live[index] += index == 0 ? 500 : (tick % 2 == 0 ? 64 : -64)
                }
                let total = live.reduce(0, +)
                let totals = Figures(
                    liveBytes: total, liveCount: total / 50, allocBytes: total * 2,
                    allocCount: total / 25,
                    peakBytes: total, gcLiveBytes: total, gcLiveCount: total / 50)
                let snapshot = try writer.insertSnapshot(
                    runID: run, stateID: state, timeMs: time, kind: .interval, totals: totals,
                    gcCycles: Int64(tick))
                for changed in 0..<(tick == 0 ? 200 : 5) {
                    let index = tick == 0 ? changed : (tick * 5 + changed) % 200
                    let figures = Figures(
                        liveBytes: live[index], liveCount: live[index] / 50,
                        allocBytes: live[index] * 2,
                        allocCount: live[index] / 25, peakBytes: live[index],
                        gcLiveBytes: live[index],
                        gcLiveCount: live[index] / 50)
                    try writer.insertStats(
                        stateID: state, siteID: sites[index], type: 2, snapshotID: snapshot,
                        figures: figures)
                }
            }
            try writer.endRun(run, endedMs: start + 60_480 * 10_000)
        }
        let page = directory.appendingPathComponent("long.html")
        let written = try Harness.luamem(["report", "--db", db.path, "-o", page.path])
        #expect(written.status == 0, "\(written.stderr)")
        let size = try FileManager.default.attributesOfItem(atPath: page.path)[.size] as? Int ?? 0
        #expect(size < 400_000, "report of \(size) bytes")
        let dom = try browser(["--dump-dom", page.absoluteString]).stdout
        #expect(dom.contains("data-ready=\"1\""))
        // file0.lua:1 grows 500 bytes every 40 snapshots: the one leak suspect.
        let suspect = try #require(
            dom.firstMatch(
                of: try Regex(
                    #"<tr class="suspect" data-site="([^"]+)">"#, as: (Substring, Substring).self)))
        #expect(suspect.1 == "file0.lua:1")
    }

    /// A run too short for figures after GC (tiny.lua completes no cycle): the page says so,
    /// as query does on stderr, and ranks growth by the same live bytes query falls back to;
    /// history says it too and its CHANGE follows the live bytes.
    @Test func aShortRunsReportAndHistorySayTheyFallBackToLiveBytes() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("tiny.db")
        try Harness.track("tiny.lua", db: db)
        let written = try Harness.luamem(["report", "--db", db.path, "-o", "-"])
        #expect(written.status == 0, "\(written.stderr)")
        #expect(written.stderr.contains("too few for figures after GC"), "\(written.stderr)")
        let html = written.stdout
        #expect(html.contains("<p class=\"note\">Only 0 GC cycles completed in this window"))
        let query = try Harness.jsonRows(
            Harness.luamem(["query", "--db", db.path, "--format", "json"]).stdout)
        let top = try #require(query.first)
        let row = try #require(
            html.firstMatch(
                of: try Regex(
                    #"<tr class="site" data-site="([^"]+)" data-growth="(-?\d+)" data-live="(\d+)">"#,
                    as: (Substring, Substring, Substring, Substring).self)))
        #expect(String(row.1) == top["site"] as? String)
        #expect(Int(row.2) == top["growth_bytes"] as? Int)
        #expect(Int(row.3) == top["live_bytes"] as? Int)

        // On a fast machine the start and final snapshots fall in one millisecond: still two
        // points, and the same growth.
        let sameMs = directory.appendingPathComponent("same-ms.db")
        try FileManager.default.copyItem(at: db, to: sameMs)
        _ = try Harness.run(
            "/usr/bin/sqlite3",
            [sameMs.path, "UPDATE snapshots SET time_ms = (SELECT min(time_ms) FROM snapshots);"])
        let collapsed = try Harness.luamem(["report", "--db", sameMs.path, "-o", "-"]).stdout
        let again = try #require(
            collapsed.firstMatch(
                of: try Regex(
                    #"<tr class="site" data-site="([^"]+)" data-growth="(-?\d+)" data-live="(\d+)">"#,
                    as: (Substring, Substring, Substring, Substring).self)))
        #expect(String(again.1) == top["site"] as? String)
        #expect(Int(again.2) == top["growth_bytes"] as? Int)

        let history = try Harness.luamem([
            "history", "--db", db.path, "tiny.lua:3", "--format", "json",
        ])
        #expect(history.status == 0, "\(history.stderr)")
        #expect(history.stderr.contains("too few for figures after GC"), "\(history.stderr)")
        let points = try Harness.jsonRows(history.stdout)
        let last = try #require(points.last), before = try #require(points.dropLast().last)
        #expect(
            last["change_bytes"] as? Int
                == (last["live_bytes"] as? Int ?? 0) - (before["live_bytes"] as? Int ?? 0),
            "\(points)")
        #expect((last["change_bytes"] as? Int ?? 0) >= 10 * 56, "\(points)")
    }

    @Test func reportRefusesWhatItCannotWrite() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("m.db")
        try Harness.track("sites.lua", db: db)
        let output = try Harness.luamem([
            "report", "--db", db.path, "-o", "/nonexistent/dir/r.html",
        ])
        #expect(output.status == 2)
        #expect(output.stderr.contains("cannot write /nonexistent/dir/r.html"))
    }
}
