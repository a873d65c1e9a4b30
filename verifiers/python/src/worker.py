# rlvr's Python reward worker: imports one reward function and answers JSON lines.
# argv: PATH FUNCTION STYLE (verl | trl | auto). Requests on stdin, one per line:
#   {"id", "response", "ground_truth", "data_source", "extra_info", "prompt"}
#     answered by {"id", "score", "details"} or {"id", "error": traceback};
#   {"id", "batch": [request, ...]} (items as above, their ids ignored)
#     answered by ONE line {"id", "results": [{"score", "details"} | {"error": traceback}, ...]},
#     one result per item, in order. A TRL function is called once for the whole batch (lists
#     of every prompt/completion/kwarg); an exception there, or a returned list of the wrong
#     length, makes every item an error. A verl function is called once per item.
# Answers go to the real stdout. The user's own prints go to stderr, so they cannot corrupt
# the protocol.
import importlib.util
import inspect
import json
import sys
import traceback

out = sys.stdout
sys.stdout = sys.stderr
path, func_name, style = sys.argv[1], sys.argv[2], sys.argv[3]
spec = importlib.util.spec_from_file_location("rlvr_user_reward", path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
fn = getattr(module, func_name)
if style == "auto":
    params = list(inspect.signature(fn).parameters)
    style = "trl" if params and params[0] in ("prompts", "completions") else "verl"
out.write(json.dumps({"ready": True, "style": style}) + "\n")
out.flush()


def scored(result):
    """A function's result (a number or a dict with `score`) as {"score", "details"}."""
    if isinstance(result, dict):
        score = float(result["score"])
        details = {k: v for k, v in result.items() if k != "score"}
    else:
        score = float(result)
        details = {}
    return {"score": score, "details": details}


def failed():
    return {"error": traceback.format_exc(limit=20)}


def verl_one(req):
    try:
        return scored(fn(req.get("data_source"), req.get("response"), req.get("ground_truth"), req.get("extra_info")))
    except BaseException:
        return failed()


def trl_batch(reqs):
    """One call of a TRL function over all of `reqs`; one result per request."""
    n = len(reqs)
    try:
        kwargs = {
            "ground_truth": [r.get("ground_truth") for r in reqs],
            "data_source": [r.get("data_source") for r in reqs],
        }
        # Every extra_info key of any item becomes a kwarg list (None where an item lacks it).
        keys = []
        for r in reqs:
            extra = r.get("extra_info")
            if isinstance(extra, dict):
                keys.extend(k for k in extra if k not in keys)
        for k in keys:
            if k not in kwargs:
                kwargs[k] = [
                    r["extra_info"].get(k) if isinstance(r.get("extra_info"), dict) else None for r in reqs
                ]
        results = fn(prompts=[r.get("prompt") for r in reqs], completions=[r.get("response") for r in reqs], **kwargs)
        results = list(results)
        if len(results) != n:
            raise ValueError(f"the reward function returned {len(results)} scores for {n} completions")
    except BaseException:
        err = failed()
        return [err] * n
    answers = []
    for result in results:
        try:
            answers.append(scored(result))
        except BaseException:
            answers.append(failed())
    return answers


def dump_batch(rid, results):
    """The batch answer line. An item that is not strict JSON (a NaN or infinite score or
    detail, a circular reference…) becomes an error instead of spoiling the whole line."""
    try:
        return json.dumps({"id": rid, "results": results}, default=str, allow_nan=False)
    except Exception:
        pass
    checked = []
    for r in results:
        try:
            json.dumps(r, default=str, allow_nan=False)
            checked.append(r)
        except Exception as e:
            checked.append({"error": f"the reward function's result is not valid JSON ({e}): {r!r:.500}"})
    return json.dumps({"id": rid, "results": checked}, default=str, allow_nan=False)


for line in sys.stdin:
    try:
        req = json.loads(line)
    except Exception:
        continue
    rid = req.get("id")
    batch = req.get("batch")
    if isinstance(batch, list):
        items = [r if isinstance(r, dict) else {} for r in batch]
        if not items:
            results = []
        elif style == "trl":
            results = trl_batch(items)
        else:
            results = [verl_one(r) for r in items]
        out.write(dump_batch(rid, results) + "\n")
        out.flush()
        continue
    try:
        if style == "trl":
            kwargs = {"ground_truth": [req.get("ground_truth")], "data_source": [req.get("data_source")]}
            extra = req.get("extra_info")
            if isinstance(extra, dict):
                for k, v in extra.items():
                    kwargs.setdefault(k, [v])
            result = fn(prompts=[req.get("prompt")], completions=[req.get("response")], **kwargs)[0]
        else:
            result = fn(req.get("data_source"), req.get("response"), req.get("ground_truth"), req.get("extra_info"))
        answer = {"id": rid, **scored(result)}
    except BaseException:
        answer = {"id": rid, **failed()}
    out.write(json.dumps(answer, default=str) + "\n")
    out.flush()
