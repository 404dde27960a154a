import Engine

/// `bh-bench --edit lora|full [--profile]`: optimizer steps of a real edit (EditExperiment, as the
/// library runs it) on the demo dataset with an untrained model of the preset's shape: LoRA r32 on
/// the last block's MLP (frozen base: the side path and the frozen-tensor backward), or full
/// fine-tuning of every block. Prints steps/s over the median step, and the profile when asked.
func editBench(preset: String, method: String, steps: Int, warmup: Int, profile: Bool) throws(EngineError) {
    let ds = try Dataset.generate(specJSON: #"{"preset": "demo", "seed": 0}"#)
    let config = try ModelConfig.forDataset(json: #"{"preset": "\#(preset)"}"#, dataset: ds, what: "bh-bench")
    let model = try LanguageModel(config: config)
    let set = try EditSetBuilder.build(try EditSpec(json: #"{"kind": "single", "seed": 0}"#), facts: ds.factView())
    let last = config.layers - 1
    let epochs = max(4, (steps + warmup + 2) * 32 / max(1, set.sequenceGroup.count) + 1)
    let optimizer = #""optimizer": {"epochs": \#(epochs), "batch_size": 32, "learning_rate": 0.0001}"#
    let json = method == "lora"
        ? #"{"method": "lora", "rank": 32, "alpha": 32, "layers": {"blocks": [\#(last)], "sublayers": "mlp"}, \#(optimizer)}"#
        : #"{"method": "full", "layers": {"sublayers": "both"}, \#(optimizer)}"#
    let spec = try EditMethodSpec(json: json, layers: config.layers)
    let experiment = try EditExperiment(model: model, editSet: set, method: spec, dataset: ds)
    print("bh-bench --edit \(method): \(preset) on the demo dataset (vocabulary \(config.vocabSize)), \(set.sequenceGroup.count) training sentences, batch 32")
    print("  method \(json)")
    let profiler = Profiler()
    var times: [Double] = []
    var n = 0
    var t0 = monotonicSeconds()
    while n < warmup + steps, try experiment.step() != nil {
        let t = monotonicSeconds()
        if n == warmup - 1, profile { profiler.reset(); model.net.profiler = profiler }
        if n >= warmup { times.append(t - t0) }
        t0 = t
        n += 1
    }
    model.net.profiler = nil
    times.sort()
    guard !times.isEmpty else { throw .invalid("bh-bench: the edit ended after \(n) steps") }
    let median = times[times.count / 2]
    print("  step time: median \(fmt(median * 1000, 2)) ms, best \(fmt(times[0] * 1000, 2)) ms over \(times.count) steps")
    print("edit_steps_per_s \(fmt(1 / median, 2))")
    if profile {
        print("profile (per step, \(times.count) steps; the optimizer and the trainer's batching are outside the phases):")
        print(profiler.report(steps: times.count), terminator: "")
    }
}
