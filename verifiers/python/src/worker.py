# rlvr's Python reward worker: imports one reward function and answers JSON lines.
# argv: PATH FUNCTION STYLE (verl | trl | auto). Requests on stdin, one per line:
#   {"id", "response", "ground_truth", "data_source", "extra_info", "prompt"}
# Answers on the real stdout: {"id", "score", "details"} or {"id", "error": traceback}.
# The user's own prints go to stderr, so they cannot corrupt the protocol.
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

for line in sys.stdin:
    try:
        req = json.loads(line)
    except Exception:
        continue
    rid = req.get("id")
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
        if isinstance(result, dict):
            score = float(result["score"])
            details = {k: v for k, v in result.items() if k != "score"}
        else:
            score = float(result)
            details = {}
        answer = {"id": rid, "score": score, "details": details}
    except BaseException:
        answer = {"id": rid, "error": traceback.format_exc(limit=20)}
    out.write(json.dumps(answer, default=str) + "\n")
    out.flush()
