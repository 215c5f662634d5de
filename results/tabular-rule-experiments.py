"""Changes to BEP's rule for a tabular MLP, measured in numpy only (docs/accuracy.md, "Rule
changes for the tabular rows"): each patches the engine or the trainer for the experiment and
was not built. One JSON line per set, seed and rule, with both of fit's candidates.

    PYTHONPATH=. OMP_NUM_THREADS=1 python results/tabular-rule-experiments.py OUT.jsonl RULE KEY[,KEY...] [SEEDS]
    python results/tabular-rule-experiments.py summary FILE.jsonl

RULE:
- ``none``: today's rule (fit's candidates as it trains them; any data set, series too);
- ``average``: the hidden weights each candidate ends with are the rounded mean of its weights
  after each of the last quarter, half or three quarters of its epochs (one training, four lines:
  "none" is today's model, to the bit);
- ``stability:F``: a group of the winner-takes-update with no wrong neuron updates its right
  neuron of smallest stability s = a*·z if s < floor(F · fan-in) (a margin that only adds updates);
- ``noise:P``: every non-bias input bit of every training batch flipped with probability P;
- ``classifier:S``: the classifier learns: integer hidden weights S · P to start (BEP's frame),
  P = sign of them after each batch, each triggered sample moving its class's row by +2a and its
  rival's by -2a (a multi-class perceptron on the last hidden activations a);
- ``joint:S``: the output layer learns as an integer readout V (S · P to start) and the hidden
  layers learn through it: the last layer's desired bits are sign(V[true] - V[rival]) where not 0,
  and each triggered sample moves V[true] by +a and V[rival] by -a (predictions argmax a · Vᵀ);
- ``ramp:M``: a sample triggers only while its margin is also at least -floor(M · K_L) (a ramp
  loss: badly wrong samples, such as mislabelled ones, stop pulling the weights);
- ``pick:largest``, ``pick:random``: the winner-takes-update takes a group's most wrong neuron
  (largest |s|), or a wrong neuron drawn at random, instead of the least wrong;
- ``linear:S``: a sample triggers iff its margin is below u, u uniform on (0, S · R]: the chance
  of an update falls linearly from 1 at margin 0 to 0 at S · R;
- ``graded:F``: every sample triggers with probability 1 - q_c, q the softmax of the logits over
  F · sqrt(K_L) (cross-entropy's weight of a sample), in place of the margin's all-or-nothing;
- ``gradedr:F``: the same with the true class's logit less R (a smoothed margin trigger: 1/2
  at margin R, today's all-or-nothing as F goes to 0);
- ``soft:F``: the last layer's desired bits on a triggered sample are sign(P[c] - q · P), q the
  softmax of the logits over F · sqrt(K_L) (cross-entropy's direction; no opinion where 0);
- ``window:F``: each group updates its neuron of smallest |s| among its wrong neurons and its
  right ones with s <= floor(F · fan-in), whichever is closer to its threshold (a right one is
  pushed further from it), as QAT's straight-through gradient moves every neuron near its
  threshold, right or wrong;
- ``blocks:B``: the last hidden layer's neurons in B blocks, each triggered on its own margin
  (floor(r · K_L / B) on its slice of the logits) and learning only when it triggers, as B
  independent committees whose votes are summed;
- ``rival``: the last layer's desired activation is the true class's prototype P[c] only where it
  differs from the rival's (the other class of highest logit), elsewhere the current activation
  (no update there): the updates that move the margin between the two, as a multi-class hinge.

Each line: the key, the seed, the rule, and per candidate (fit's default first) its widths,
synapses, epochs and validation / test / training accuracy. ``summary`` replays fit's choice
(validation, then fewer synapses, then the default) and prints each rule's mean test and
validation accuracy over the sets, against the file's "none" lines (today's runs, written by
``average``).
"""

import collections
import json
import pathlib
import statistics
import sys
import time


def chosen(candidates):  # fit's rule: validation, then fewer synapses; a full tie keeps the default (first)
    return max(candidates, key=lambda c: (c["val"], -c["synapses"]))


def summary(path):
    lines = [json.loads(line) for line in pathlib.Path(path).read_text().splitlines() if line.strip()]
    by_rule = collections.defaultdict(lambda: collections.defaultdict(list))
    for line in lines:
        by_rule[line["rule"]][line["set"]].append(chosen(line["candidates"]))
    if "none" not in by_rule:  # today's runs, which every rule is measured against
        raise SystemExit(f"{path}: no 'none' lines (run the rule 'average', which writes them)")
    today = by_rule["none"]
    mean = lambda table, k: 100 * statistics.mean(statistics.mean(c[k] for c in cs) for cs in table.values())  # noqa: E731
    print(f"today: test {mean(today, 'test'):.2f} / validation {mean(today, 'val'):.2f} over {len(today)} sets")
    print("| rule | test / validation | change | training | largest gains | largest loss |")
    print("|---|---|---|---|---|---|")
    for rule, table in by_rule.items():
        if rule == "none":
            continue
        delta = sorted(((100 * (statistics.mean(c["test"] for c in table[s]) -
                                statistics.mean(c["test"] for c in today[s])), s) for s in table), reverse=True)
        gains = ", ".join(f"{s.split(':')[0]} {d:+.1f}" for d, s in delta[:2] if d > 0.05) or "none"
        print(f"| {rule} | {mean(table, 'test'):.2f} / {mean(table, 'val'):.2f} | "
              f"{mean(table, 'test') - mean(today, 'test'):+.2f} / {mean(table, 'val') - mean(today, 'val'):+.2f} | "
              f"{mean(table, 'train') - mean(today, 'train'):+.2f} | {gains} | "
              f"{delta[-1][1].split(':')[0]} {delta[-1][0]:+.1f} |")


def smallest_key(key, gamma):
    """Each group of ``gamma`` consecutive neurons picks its neuron of smallest key (the lowest
    index on ties), none where every key is inf: the winner-takes-update's mask."""
    import numpy as np

    n, k = key.shape
    groups = -(-k // gamma)
    padded = np.full((n, groups * gamma), np.inf, dtype=np.float32)
    padded[:, :k] = key
    padded = padded.reshape(n, groups, gamma)
    winner = padded.argmin(axis=2)
    picked = np.take_along_axis(padded, winner[:, :, None], axis=2)[:, :, 0] < np.inf
    mask = np.zeros((n, groups, gamma), dtype=bool)
    np.put_along_axis(mask, winner[:, :, None], picked[:, :, None], axis=2)
    return mask.reshape(n, groups * gamma)[:, :k]


def winners(stability, gamma, kappa):
    """engine.network.winner_mask, with right neurons of stability below kappa after the wrong ones
    (kappa 0: winner_mask itself)."""
    import numpy as np

    return smallest_key(np.where(stability < 0, -stability,
                                 np.where(stability < kappa, np.float32(1e6) + stability, np.inf)), gamma)


def winners_by(stability, gamma, order, rng):
    """Winner-takes-update with another choice among a group's wrong neurons: ``largest`` the
    wrong neuron of largest |s| (the most wrong), ``random`` a wrong neuron drawn uniformly;
    ``window`` the neuron of smallest |s| among the wrong ones and the right ones with s <= ``rng``
    (a bound), whichever is closer to its threshold."""
    import numpy as np

    if order == "window":
        eligible = (stability < 0) | ((stability > 0) & (stability <= rng))
        return smallest_key(np.where(eligible, np.abs(stability), np.inf), gamma)
    chance = rng.random(stability.shape, dtype=np.float32) if order == "random" else stability
    return smallest_key(np.where(stability < 0, chance, np.inf), gamma)


def margins(logits, y):
    """Each sample's margin: its class's logit less the highest other one (BEP's trigger reads it)."""
    import numpy as np

    n = len(y)
    rivals = logits.copy()
    rivals[np.arange(n), y] = -np.inf
    return logits[np.arange(n), y] - rivals.max(axis=1)


def learn_through(net, ins, zs, hit, last, fraction=0.0, choose=None, no_opinion=None):
    """Network._learn_mlp (every layer learning) from the last layer's desired bits ``last``,
    with a stability margin of floor(fraction · fan-in) for the winners, or the winners
    ``choose(stability, gamma, layer)``; ``no_opinion``: the desired bit where the layer above
    sends none (v = 0; BEP's: the current activation)."""
    import numpy as np

    from bep_mcu.engine import network

    L = net.spec.n_layers
    target = [None] * L
    target[L - 1] = last
    for layer in range(L - 2, -1, -1):
        gated = np.where(np.abs(zs[layer + 1][hit]) <= net.gate[layer + 1], target[layer + 1], np.float32(0))
        v = gated @ net.W[layer + 1]
        target[layer] = np.where(v > 0, np.float32(1), np.where(v < 0, np.float32(-1),
                                 ins[layer + 1][hit] if no_opinion is None else no_opinion))
    changed, updates = [], 0
    for layer in range(L):
        stability = target[layer] * zs[layer][hit]
        mask = winners(stability, net.gamma[layer], np.floor(fraction * net.spec.fan_in(layer))) if choose is None \
            else choose(stability, net.gamma[layer], layer)
        updates += int(mask.sum())
        changed.append(network.apply_updates(net.H[layer], mask, target[layer], ins[layer][hit], net.lo, net.hi))
    return changed, updates


def rivals(a, y, P):
    """Each sample's rival: the other class of highest logit a · Pᵀ."""
    import numpy as np

    logits = a @ P.T
    logits[np.arange(len(y)), y] = -np.inf
    return logits.argmax(axis=1)


def perceptron(rows, a, y, rival, step, lo, hi):
    """Each sample, in order, moves its class's row by +step · a and its rival's by -step · a,
    saturating at [lo, hi] each time."""
    import numpy as np

    for sample, (c, r) in enumerate(zip(y, rival)):
        rows[c] = np.clip(rows[c] + step * a[sample], lo, hi)
        rows[r] = np.clip(rows[r] - step * a[sample], lo, hi)


def remembered_trainers():
    """The numpy trainers created from now on, in order (a run's own is the last)."""
    from bep_mcu import training

    trainers, init = [], training.NumpyTrainer.__init__

    def remember(self, model):
        init(self, model)
        trainers.append(self)
    training.NumpyTrainer.__init__ = remember
    return trainers


def patch(rule):
    """Patches the package for ``rule``; returns the endings of a trained candidate (name → model)."""
    import numpy as np

    from bep_mcu import training
    from bep_mcu.engine import network

    name, _, value = rule.partition(":")
    if name == "noise":
        state = {}

        def train_batch(self, batch):
            x, free = batch.x.copy(), batch.x.shape[1] - state["bias"]
            flip = state["rng"].random((x.shape[0], free)) < float(value)
            x[:, :free] = np.where(flip, -x[:, :free], x[:, :free])
            return self.net.train_batch(x, batch.y).predictions
        training.NumpyTrainer.train_batch = train_batch

        def start(model, seed):
            state["bias"], state["rng"] = model.encoder.bias_bits, np.random.default_rng(seed)
        return start, lambda trained: {rule: trained}
    if name in ("stability", "rival"):
        fraction = float(value) if name == "stability" else 0.0

        def learn_mlp(self, ins, zs, a_out, y, hit, trace):  # Network._learn_mlp, every layer learning
            last = self.P[y[hit]]
            if name == "rival":
                rival = self.P[rivals(a_out[hit], y[hit], self.P)]
                last = np.where(last != rival, last, a_out[hit])
            return learn_through(self, ins, zs, hit, last, fraction)
        network.Network._learn_mlp = learn_mlp
        return lambda model, seed: None, lambda trained: {rule: trained}
    if name == "classifier":
        # The classifier learns too: integer hidden weights H_P = S · P (BEP's frame, so training
        # starts from it), P = sign(H_P) refreshed after each batch, and each triggered sample moves
        # its true class's row by +2a and its rival's (the other class of highest logit) by -2a,
        # saturating at the hidden weights' bounds: a multi-class perceptron on the last activations.
        scale = float(value)
        learn = network.Network._learn_mlp

        def learn_mlp(self, ins, zs, a_out, y, hit, trace):
            if not hasattr(self, "HP"):
                self.HP = self.P * np.float32(scale)
            result = learn(self, ins, zs, a_out, y, hit, trace)  # targets from this batch's P
            perceptron(self.HP, a_out[hit], y[hit], rivals(a_out[hit], y[hit], self.P), 2, self.lo, self.hi)
            self.P = network.sign_pm1(self.HP)  # the batch's forward passes are done
            return result
        network.Network._learn_mlp = learn_mlp
        trainers = remembered_trainers()

        def endings(trained):  # the model keeps the classifier its run learnt
            return {rule: trained.replace(classifier=trainers[-1].net.P.astype(np.int8))}
        return lambda model, seed: trainers.clear(), endings
    if name == "joint":
        # The output layer learns as an integer readout V (S · P to start, the trigger margin scaled
        # with it) and the hidden layers learn through it: the last layer's desired bits are
        # sign(V[true] - V[rival]) where that is not 0 (elsewhere the current activation: no update),
        # the rival being the other class of highest logit; then each triggered sample moves V[true]
        # by +a and V[rival] by -a, saturating at +-127 S. Predictions are argmax a · Vᵀ.
        scale = float(value)

        def learn_mlp(self, ins, zs, a_out, y, hit, trace):
            if not getattr(self, "joint", False):
                self.P, self.trigger_margin, self.joint = self.P * np.float32(scale), self.trigger_margin * scale, True
            a, V = a_out[hit], self.P
            rival = rivals(a, y[hit], V)
            d = V[y[hit]] - V[rival]
            result = learn_through(self, ins, zs, hit, np.where(d > 0, np.float32(1), np.where(d < 0, np.float32(-1), a)))
            perceptron(V, a, y[hit], rival, 1, -127 * scale, 127 * scale)
            return result
        network.Network._learn_mlp = learn_mlp
        trainers = remembered_trainers()

        class Readout:  # the trained model, predicting by argmax a · Vᵀ
            def __init__(self, model, V):
                self.model, self.V, self.spec, self.training = model, V.copy(), model.spec, model.training

            def score(self, X, y):
                a = self.model.network().hidden_activations(self.model.encode(X))
                return float((np.argmax(a @ self.V.T, axis=1) == self.model.encode_labels(y)).mean())

        return lambda model, seed: trainers.clear(), lambda trained: {rule: Readout(trained, trainers[-1].net.P)}
    if name == "none":  # today's rule: both candidates as fit trains them
        return lambda model, seed: None, lambda trained: {rule: trained}
    if name == "ramp":
        # A ramp instead of a hinge: a sample triggers only while its margin is above
        # -floor(M · K_L) as well as below R, so a sample the network gets badly wrong (a mislabelled
        # or outlying one, late in training) stops pulling the weights toward itself.
        floor_at = float(value)

        def triggered(self, logits, y):
            margin = margins(logits, y)
            return (margin < self.trigger_margin) & (margin >= -np.floor(floor_at * self.spec.hidden[-1]))
        network.Network._triggered = triggered
        return lambda model, seed: None, lambda trained: {rule: trained}
    if name == "pick":
        # Which wrong neuron of a group updates: BEP's is the one of smallest |s| (the least
        # disturbance); "largest" takes the most wrong, "random" any wrong one (seeded per run).
        state = {}

        def learn_mlp(self, ins, zs, a_out, y, hit, trace):
            return learn_through(self, ins, zs, hit, self.P[y[hit]],
                                 choose=lambda s, g, layer: winners_by(s, g, value, state["rng"]))
        network.Network._learn_mlp = learn_mlp
        return lambda model, seed: state.update(rng=np.random.default_rng(seed)), lambda trained: {rule: trained}
    if name == "linear":
        # A margin drawn afresh for every sample: the sample triggers iff its margin is below
        # u, u uniform on (0, S · R] (a 32-bit draw in C as the reinforcement's are), so its
        # chance of updating falls linearly from 1 at margin 0 to 0 at S · R: graded between 0
        # and the margin rather than around either; S 2 keeps today's mean margin R.
        spread = float(value)
        state = {}

        def triggered(self, logits, y):
            return margins(logits, y) < spread * self.trigger_margin * (1 - state["rng"].random(len(y)))
        network.Network._triggered = triggered
        return lambda model, seed: state.update(rng=np.random.default_rng(seed)), lambda trained: {rule: trained}
    if name in ("graded", "gradedr"):
        # A graded trigger in place of the margin's all-or-nothing: every sample triggers with
        # probability 1 - q_c, q the softmax of the logits over T = F · sqrt(K_L) (cross-entropy's
        # weight of a sample; QAT's starting logit scale at F 1), drawn from a generator seeded
        # per run, so a sample the network gets right by a wide margin rarely updates and a wrong
        # one almost always does.
        scale = float(value)
        state = {}

        def triggered(self, logits, y):
            if name == "gradedr":  # the true class's logit less the margin R: a smoothed margin trigger
                logits = logits.copy()
                logits[np.arange(len(y)), y] -= self.trigger_margin
            z = logits / (scale * np.sqrt(self.P.shape[1]))
            q = np.exp(z - z.max(axis=1, keepdims=True))
            q = q[np.arange(len(y)), y] / q.sum(axis=1)
            return state["rng"].random(len(y)) < 1 - q
        network.Network._triggered = triggered
        return lambda model, seed: state.update(rng=np.random.default_rng(seed)), lambda trained: {rule: trained}
    if name == "soft":
        # Cross-entropy's direction as a desired activation: on a triggered sample the last layer's
        # desired bits are sign(P[c] - sum_c' q_c' P[c']), q the softmax of the logits over
        # T = F · sqrt(K_L) (QAT's starting logit scale at F 1), no opinion where that is 0: the
        # other classes weighted by how likely the network finds them, not the rival alone.
        scale = float(value)

        def learn_mlp(self, ins, zs, a_out, y, hit, trace):
            logits = a_out[hit] @ self.P.T / (scale * np.sqrt(self.P.shape[1]))
            q = np.exp(logits - logits.max(axis=1, keepdims=True))
            q /= q.sum(axis=1, keepdims=True)
            direction = self.P[y[hit]] - q @ self.P
            last = np.where(direction > 0, np.float32(1), np.where(direction < 0, np.float32(-1), np.float32(0)))
            return learn_through(self, ins, zs, hit, last)
        network.Network._learn_mlp = learn_mlp
        return lambda model, seed: None, lambda trained: {rule: trained}
    if name == "window":
        # As QAT's straight-through gradient moves every neuron near its threshold, right or wrong:
        # each group updates its neuron closest to the threshold (smallest |s|) among its wrong
        # neurons and its right ones with s <= floor(F · fan-in), toward its desired bit (a right
        # one is pushed further from the threshold). Where the layer above sends no desired bit
        # (v = 0) there is no update, as a zero gradient moves nothing.
        fraction = float(value)

        def learn_mlp(self, ins, zs, a_out, y, hit, trace):
            def choose(s, g, layer):
                return winners_by(s, g, "window", np.floor(fraction * self.spec.fan_in(layer)))
            return learn_through(self, ins, zs, hit, self.P[y[hit]], choose=choose, no_opinion=np.float32(0))
        network.Network._learn_mlp = learn_mlp
        return lambda model, seed: None, lambda trained: {rule: trained}
    if name == "blocks":
        # The last hidden layer's neurons fall into B consecutive blocks, each with its slice of P,
        # and a sample triggers each block on that block's own margin (logits a_b · P_bᵀ against
        # floor(r · K_L / B)): the blocks learn as B independent committees, as an ensemble's
        # members do, while predictions still sum every block's vote (argmax a · Pᵀ, as today).
        # An untriggered block's desired bits are no opinion (0): no update there, and nothing
        # sent back to the layer below.
        blocks = int(value)

        def triggered(self, logits, y):
            a = self.block_acts
            k = a.shape[1]
            edges = [k * b // blocks for b in range(blocks + 1)]
            hits = []
            for lo, hi in zip(edges, edges[1:]):
                part = a[:, lo:hi] @ self.P[:, lo:hi].T
                hits.append(margins(part, y) < np.floor(self.params.trigger_margin * (hi - lo) / k))
            self.block_hit = np.stack(hits, axis=1)
            self.block_edges = edges
            return self.block_hit.any(axis=1)

        forward = network.Network._forward

        def watched_forward(self, X):
            out = forward(self, X)
            self.block_acts = out[2]
            return out

        def learn_mlp(self, ins, zs, a_out, y, hit, trace):
            opinion = np.zeros((len(hit), a_out.shape[1]), dtype=np.float32)
            for b, (lo, hi) in enumerate(zip(self.block_edges, self.block_edges[1:])):
                opinion[:, lo:hi] = self.block_hit[hit, b][:, None]
            return learn_through(self, ins, zs, hit, self.P[y[hit]] * opinion)
        network.Network._triggered = triggered
        network.Network._forward = watched_forward
        network.Network._learn_mlp = learn_mlp
        return lambda model, seed: None, lambda trained: {rule: trained}
    if name == "average":
        snapshots = []

        class Snapshots(training.Observer):
            def after_epoch(self, run, record):
                snapshots.append([w.astype(np.float64) for w in run.reference.hidden_weights()])
        train = training.train

        def watched(model, X, y, epochs, batch_size=None, on_epoch=None, follow_progress=False, observers=()):
            snapshots.clear()
            return train(model, X, y, epochs, batch_size, on_epoch, follow_progress, [*observers, Snapshots()])
        training.train = watched

        def endings(trained):
            out = {"none": trained}
            for fraction in (0.25, 0.5, 0.75):
                tail = snapshots[len(snapshots) - max(1, round(fraction * len(snapshots))):]
                hidden = [np.round(np.mean([s[i] for s in tail], axis=0)).astype(h.dtype)
                          for i, h in enumerate(trained.hidden)]
                out[f"average {fraction}"] = trained.replace(hidden=tuple(hidden))
            return out
        return lambda model, seed: None, endings
    raise SystemExit(f"unknown rule '{rule}'")


def candidate_runs(keys, seeds, on_trained, start_candidate=lambda model, seed: None):
    """For each set and seed, fit's candidates (its default first) trained on the training part
    as ``fit`` trains them: yields the key, the seed, ``on_trained(model, parts)`` of each
    candidate (called as soon as it is trained; ``parts``: name → (X, y) of "train", "val" and
    "test") and the seconds both took. Also used by ``readout-experiments.py``."""
    import numpy as np

    from bep_mcu import training
    from bep_mcu.bench import parse_config
    from bep_mcu.data.datasets import load_dataset

    for key in keys:
        name, kwargs = parse_config(key)
        data = load_dataset(name)
        X, y = np.asarray(data.X_train), np.asarray(data.y_train)
        for seed in range(seeds):
            settings = training.Settings(seed=seed, **kwargs)
            model, second = training.candidates(X, y, settings)
            train_idx, val_idx = training.split_validation(training.plain_labels(y), settings.val_fraction, seed)
            parts = {"train": (X[train_idx], y[train_idx]), "val": (X[val_idx], y[val_idx]),
                     "test": (data.X_test, data.y_test)}
            begun, done = time.time(), []
            for m, s in ((model, settings), *(() if second is None else ((training.initial_model(X, y, second), second),))):
                start_candidate(m, seed)
                done.append(on_trained(training.fit_watched(m, X, y, s, train_idx), parts))
            yield key, seed, done, time.time() - begun


def run(out, rule, keys, seeds):
    start_candidate, endings = patch(rule)

    def scores(trained, parts):
        return {ending: {"hidden": list(mm.spec.hidden), "synapses": mm.spec.synapses, "epochs": mm.training.epochs,
                         **{k: mm.score(*parts[k]) for k in ("val", "test", "train")}}
                for ending, mm in endings(trained).items()}

    for key, seed, done, seconds in candidate_runs(keys, seeds, scores, start_candidate):
        ends = collections.defaultdict(list)
        for candidate in done:
            for ending, record in candidate.items():
                ends[ending].append(record)
        with open(out, "a") as fh:
            for ending, candidates in ends.items():
                print(json.dumps({"set": key, "seed": seed, "rule": ending, "candidates": candidates,
                                  "seconds": round(seconds, 1)}), file=fh)
        print(key, seed, rule, f"{seconds:.1f}s", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "summary":
        summary(sys.argv[2])
    else:
        run(sys.argv[1], sys.argv[2], sys.argv[3].split(","), int(sys.argv[4]) if len(sys.argv) > 4 else 3)
