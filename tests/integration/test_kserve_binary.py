"""KServe v2 binary tensor extension (Triton's), output selection and model
metadata over real TLS against a real maasd and runtimes.

Requests are built the way tritonclient's HTTP client builds them (facts of
its protocol, not its code): the JSON header, then the raw tensors in input
order, `Inference-Header-Content-Length` giving the JSON's length, each
binary input with parameters.binary_data_size, no "outputs" and
parameters.binary_data_output = true when every output is wanted in binary.
Responses are parsed the way it parses them."""
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import (HTTP_TIMEOUT, REPO, SCALE, assert_close, assert_error,
                      deploy_file, infer, onnx_forward, output_by_name,
                      running_maasd, tenant_with_key, tensor)

HDR = "Inference-Header-Content-Length"
NP = {"FP32": np.float32, "FP64": np.float64, "FP16": np.float16,
      "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
      "INT64": np.int64, "UINT8": np.uint8, "UINT16": np.uint16,
      "UINT32": np.uint32, "UINT64": np.uint64, "BOOL": np.bool_}


def gen_onnx(root, kind, *args):
    path = root / (kind + "".join(a.strip("-") for a in args) + ".onnx")
    if not path.exists():
        r = subprocess.run(["/usr/bin/python3", str(REPO / "tools" /
                                                    "gen-onnx.py"), kind,
                            "-o", str(path), *args],
                           capture_output=True, timeout=120 * SCALE)
        assert r.returncode == 0, r.stderr.decode()[-2000:]
        path.chmod(0o644)
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory, models):
    base = tmp_path_factory.mktemp("kserve")
    with running_maasd(base) as d:
        mlp = models.get((784, 32, 10), seed=11)
        io = gen_onnx(models.root, "io")
        deploy_file(d, "mlp", mlp)
        deploy_file(d, "io", io)
        _, key = tenant_with_key(d)
        yield {"d": d, "s": d.tenant(key["key"]), "mlp": mlp, "io": io,
               "root": models.root}


def post_binary(env, model, header, blobs, hdrlen=None, headers=None):
    """POSTs header (dict or bytes) followed by the blobs."""
    j = header if isinstance(header, bytes) else json.dumps(header).encode()
    h = {HDR: str(len(j) if hdrlen is None else hdrlen),
         "Content-Type": "application/octet-stream"}
    h.update(headers or {})
    return env["s"].post(env["d"].url(f"/v2/models/{model}/infer"),
                         data=j + b"".join(blobs), headers=h,
                         timeout=HTTP_TIMEOUT)


def bin_input(name, arr, datatype="FP32"):
    arr = np.ascontiguousarray(arr)
    raw = arr.astype("<" + arr.dtype.str[1:]).tobytes() \
        if arr.dtype.itemsize > 1 else arr.tobytes()
    return ({"name": name, "shape": list(arr.shape), "datatype": datatype,
             "parameters": {"binary_data_size": len(raw)}}, raw)


def parse_response(r):
    """(json, {name: array}) the way the Triton client reads a response:
    JSON header of Inference-Header-Content-Length bytes, then each
    output's binary_data_size bytes in the order of "outputs"."""
    assert r.status_code == 200, r.text[:500]
    n = r.headers.get(HDR)
    if n is None:
        assert r.headers["Content-Type"].startswith("application/json")
        j = r.json()
        return j, {o["name"]: np.array(o["data"], dtype=NP.get(
            o["datatype"], object)).reshape(o["shape"]) for o in j["outputs"]}
    assert r.headers["Content-Type"] == "application/octet-stream"
    body = r.content
    n = int(n)
    j = json.loads(body[:n])
    off, arrs = n, {}
    for o in j["outputs"]:
        p = o.get("parameters", {})
        if "binary_data_size" in p:
            assert "data" not in o
            sz = p["binary_data_size"]
            raw = body[off:off + sz]
            assert len(raw) == sz
            off += sz
            arrs[o["name"]] = np.frombuffer(
                raw, dtype=np.dtype(NP[o["datatype"]]).newbyteorder("<")
            ).reshape(o["shape"])
        else:
            arrs[o["name"]] = np.array(o["data"], dtype=NP.get(
                o["datatype"], object)).reshape(o["shape"])
    assert off == len(body), "bytes left after the binary outputs"
    return j, arrs


def _x(n, seed):
    return np.random.default_rng(seed).random((n, 784)).astype(np.float32)


# --- metadata ----------------------------------------------------------------

def test_server_metadata_lists_binary_extension(env):
    r = env["s"].get(env["d"].url("/v2"), timeout=HTTP_TIMEOUT)
    assert r.status_code == 200
    assert "binary_tensor_data" in r.json()["extensions"]


def test_model_metadata_multi_io(env):
    r = env["s"].get(env["d"].url("/v2/models/io"), timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, r.text
    m = r.json()
    assert m["name"] == "io" and m["versions"] == ["1"]
    assert m["platform"] == "maas_onnx"
    assert m["inputs"] == [{"name": n, "datatype": "FP32", "shape": [-1, 4]}
                           for n in ("a", "b")]
    assert [o["name"] for o in m["outputs"]] == ["sum", "prod", "relu"]
    assert all(o["shape"] == [-1, 4] and o["datatype"] == "FP32"
               for o in m["outputs"])
    r = env["s"].get(env["d"].url("/v2/models/io/versions/1"),
                     timeout=HTTP_TIMEOUT)
    assert r.status_code == 200 and r.json()["inputs"] == m["inputs"]


def test_metadata_lists_every_served_version(env):
    d = env["d"]
    deploy_file(d, "io2", env["io"])
    r = d.apost("/admin/v1/models", {"name": "io2", "version": "2",
                                     "path": str(env["io"])})
    assert r.status_code == 201, r.text
    r = d.admin.put(d.admin_url("/admin/v1/deployments/io2/traffic"),
                    json={"versions": [{"version": "1", "weight": 50},
                                       {"version": "2", "weight": 50}]},
                    timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, r.text
    r = env["s"].get(d.url("/v2/models/io2"), timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, r.text
    assert sorted(r.json()["versions"]) == ["1", "2"]
    r = env["s"].get(d.url("/v2/models/io2/versions/2"), timeout=HTTP_TIMEOUT)
    assert r.status_code == 200 and r.json()["versions"] == ["2"]


# --- binary in and out ----------------------------------------------------

def test_binary_in_binary_out_like_tritonclient(env):
    x = _x(3, 1)
    desc, raw = bin_input("input", x)
    hdr = {"id": "t-1", "inputs": [desc],
           "parameters": {"binary_data_output": True}}
    r = post_binary(env, "mlp", hdr, [raw])
    j, out = parse_response(r)
    assert j["id"] == "t-1" and j["model_name"] == "mlp"
    o = output_by_name(j, "output")
    assert o["parameters"]["binary_data_size"] == 3 * 10 * 4
    assert out["output"].dtype == np.float32
    assert_close(out["output"], onnx_forward(env["mlp"], {"input": x})
                 ["output"])
    # The same request in JSON gives the same numbers (both are float32).
    rj = infer(env["s"], env["d"], "mlp", [tensor("input", x)])
    _, outj = parse_response(rj)
    assert np.array_equal(outj["output"].astype(np.float32), out["output"])


def test_binary_in_json_out(env):
    x = _x(2, 2)
    desc, raw = bin_input("input", x)
    r = post_binary(env, "mlp", {"inputs": [desc]}, [raw])
    assert HDR not in r.headers
    j, out = parse_response(r)
    assert "data" in j["outputs"][0]
    assert_close(out["output"], onnx_forward(env["mlp"], {"input": x})
                 ["output"])


def test_json_request_with_binary_output(env):
    x = _x(1, 3)
    r = infer(env["s"], env["d"], "mlp", [tensor("input", x)],
              outputs=[{"name": "output",
                        "parameters": {"binary_data": True}}])
    assert r.headers.get(HDR)
    _, out = parse_response(r)
    assert_close(out["output"], onnx_forward(env["mlp"], {"input": x})
                 ["output"])


def test_mixed_inputs_and_output_selection(env):
    rng = np.random.default_rng(4)
    a = rng.standard_normal((2, 4)).astype(np.float32)
    b = rng.standard_normal((2, 4)).astype(np.float32)
    da, raw = bin_input("a", a)
    hdr = {"inputs": [tensor("b", b), da],
           "outputs": [{"name": "prod", "parameters": {"binary_data": False}},
                       {"name": "sum", "parameters": {"binary_data": True}}],
           "parameters": {"binary_data_output": True}}
    j, out = parse_response(post_binary(env, "io", hdr, [raw]))
    assert [o["name"] for o in j["outputs"]] == ["prod", "sum"]
    assert "data" in output_by_name(j, "prod")
    assert "binary_data_size" in output_by_name(j, "sum")["parameters"]
    assert np.array_equal(out["sum"], a + b)
    assert_close(out["prod"], a * b)
    # all outputs in binary, in the model's order
    da, raw_a = bin_input("a", a)
    db, raw_b = bin_input("b", b)
    j, out = parse_response(post_binary(env, "io", {
        "inputs": [db, da], "parameters": {"binary_data_output": True}},
        [raw_b, raw_a]))
    assert [o["name"] for o in j["outputs"]] == ["sum", "prod", "relu"]
    assert np.array_equal(out["relu"], np.maximum(a + b, 0))
    assert np.array_equal(out["prod"], a * b)


def test_output_selection_errors(env):
    x = tensor("a", np.zeros((1, 4), np.float32))
    y = tensor("b", np.zeros((1, 4), np.float32))
    s, d = env["s"], env["d"]
    assert_error(infer(s, d, "io", [x, y], outputs=[{"name": "nope"}]), 400,
                 mention="nope")
    assert_error(infer(s, d, "io", [x, y], outputs=[{"name": "sum"},
                                                    {"name": "sum"}]),
                 400, mention="twice")
    assert_error(infer(s, d, "io", [x, y], outputs=[
        {"name": "sum", "parameters": {"binary_data": "yes"}}]), 400,
        mention="binary_data")
    assert_error(infer(s, d, "io", [x, y], outputs=[
        {"name": "sum", "parameters": {"classification": 2}}]), 400,
        mention="classification")
    r = infer(s, d, "io", [x, y], outputs=[{"name": "relu"}])
    j, _ = parse_response(r)
    assert [o["name"] for o in j["outputs"]] == ["relu"]


def test_datatype_mismatch_names_input_and_both_types(env):
    r = infer(env["s"], env["d"], "io",
              [tensor("a", np.zeros((1, 4), np.int64), datatype="INT64"),
               tensor("b", np.zeros((1, 4), np.float32))])
    e = assert_error(r, 400, mention="'a'")
    assert "FP32" in e["message"] and "INT64" in e["message"]


# --- malformed binary requests ---------------------------------------------

def _mlp_desc(n=1, size=None):
    return {"name": "input", "shape": [n, 784], "datatype": "FP32",
            "parameters": {"binary_data_size": 784 * 4 * n
                           if size is None else size}}


@pytest.mark.parametrize("case", [
    "header_past_body", "header_not_number", "header_negative",
    "header_empty", "header_huge", "extra_bytes", "size_past_body",
    "size_not_shape", "size_negative", "size_overflow", "size_float",
    "size_too_big_for_json", "data_and_size", "no_data", "json_bad",
    "bool_size"])
def test_malformed_binary(env, case):
    raw = np.zeros((1, 784), np.float32).tobytes()
    hdr, blobs, hdrlen = {"inputs": [_mlp_desc()]}, [raw], None
    mention = None
    if case == "header_past_body":
        hdrlen, mention = len(json.dumps(hdr)) + len(raw) + 1, HDR
    elif case == "header_not_number":
        hdrlen, mention = "12a", HDR
    elif case == "header_negative":
        hdrlen, mention = "-5", HDR
    elif case == "header_empty":
        hdrlen = "0"
    elif case == "header_huge":
        hdrlen, mention = "99999999999999999999999999", HDR
    elif case == "extra_bytes":
        blobs, mention = [raw, b"\0" * 4], "beyond"
    elif case == "size_past_body":
        hdr, mention = {"inputs": [_mlp_desc(2)]}, "exceeds"
        blobs = [raw, b"\0" * (len(raw) - 4)]
    elif case == "size_not_shape":
        hdr, mention = {"inputs": [_mlp_desc(size=len(raw) - 4)]}, "need"
        blobs = [raw[:-4]]
    elif case == "size_negative":
        hdr, mention = {"inputs": [_mlp_desc(size=-4)]}, "non-negative"
    elif case == "size_overflow":
        hdr, mention = {"inputs": [_mlp_desc(size=2 ** 63 - 1)]}, "exceeds"
    elif case == "size_float":
        hdr, mention = {"inputs": [_mlp_desc(size=3136.0)]}, "integer"
    elif case == "size_too_big_for_json":
        hdr = ('{"inputs":[{"name":"input","shape":[1,784],"datatype":"FP32",'
               '"parameters":{"binary_data_size":18446744073709551616}}]}'
               ).encode()
    elif case == "data_and_size":
        d = _mlp_desc()
        d["data"] = [0.0] * 784
        hdr, mention = {"inputs": [d]}, "both"
    elif case == "no_data":
        d = _mlp_desc()
        del d["parameters"]
        hdr, mention, blobs = {"inputs": [d]}, "'data'", []
    elif case == "json_bad":
        hdr = b'{"inputs": ['
    elif case == "bool_size":
        hdr, mention = {"inputs": [_mlp_desc(size=True)]}, "integer"
    r = post_binary(env, "mlp", hdr, blobs, hdrlen=hdrlen)
    assert_error(r, 400, mention=mention)
    # the gateway is unharmed
    x = _x(1, 9)
    desc, raw = bin_input("input", x)
    assert post_binary(env, "mlp", {"inputs": [desc]},
                       [raw]).status_code == 200


def test_binary_input_without_header_is_json_error(env):
    desc, raw = bin_input("input", _x(1, 5))
    r = env["s"].post(env["d"].url("/v2/models/mlp/infer"),
                      data=json.dumps({"inputs": [desc]}).encode() + raw,
                      headers={"Content-Type": "application/octet-stream"},
                      timeout=HTTP_TIMEOUT)
    assert_error(r, 400)


def test_binary_sizes_must_sum_exactly_two_inputs(env):
    a = np.ones((1, 4), np.float32)
    da, ra = bin_input("a", a)
    db, rb = bin_input("b", a)
    # b's size one element short: a consumes 16, b 12, 4 bytes left over
    db["parameters"]["binary_data_size"] = 12
    assert_error(post_binary(env, "io", {"inputs": [da, db]}, [ra, rb]), 400,
                 mention="'b'")
    # shape [2,4] declared for b, 16 bytes sent
    db, rb = bin_input("b", a)
    db["shape"] = [2, 4]
    assert_error(post_binary(env, "io", {"inputs": [da, db]}, [ra, rb]), 400,
                 mention="'b'")


# --- other datatypes, where the runtime takes them ---------------------------

def _deploy_or_skip(env, name, path, dtype):
    d = env["d"]
    r = d.apost("/admin/v1/models", {"name": name, "version": "1",
                                     "path": str(path)})
    if r.status_code != 201:
        assert r.status_code == 400, r.text
        pytest.skip(f"the runtime does not take {dtype} yet: "
                    f"{r.json()['error']['message'][:120]}")
    from conftest import deploy
    deploy(d, name, name, "1")


@pytest.mark.parametrize("dtype,values", [
    ("INT64", [[1, -2, 2 ** 40], [0, 7, -(2 ** 62)]]),
    ("INT32", [[1, -2, 2 ** 30], [0, 7, -(2 ** 31)]]),
    ("BOOL", [[True, False, True], [False, False, True]]),
    ("FP16", [[1.5, -2.0, 0.25], [65504.0, 0.0, -1.0]]),
])
def test_identity_round_trip_json_and_binary(env, dtype, values):
    """JSON in and out, binary in and out, and the dtype's own checks:
    the range of JSON numbers, BOOL bytes other than 0 and 1."""
    name = "ident-" + dtype.lower()
    _deploy_or_skip(env, name, gen_onnx(env["root"], "identity", "--dtype",
                                        dtype), dtype)
    r = infer(env["s"], env["d"], name,
              [{"name": "x", "shape": [2, 3], "datatype": dtype,
                "data": values}])
    j, out = parse_response(r)
    o = output_by_name(j, "y")
    assert o["datatype"] == dtype and o["data"] == sum(values, [])
    assert np.array_equal(out["y"], np.array(values, dtype=NP[dtype]))
    arr = np.array(values, dtype=NP[dtype])
    desc, raw = bin_input("x", arr, dtype)
    j, out = parse_response(post_binary(env, name, {
        "inputs": [desc], "parameters": {"binary_data_output": True}},
        [raw]))
    assert np.array_equal(out["y"], arr)
    if dtype == "BOOL":
        desc["parameters"]["binary_data_size"] = 6
        assert_error(post_binary(env, name, {"inputs": [desc]},
                                 [b"\x00\x01\x02\x00\x01\x00"]), 400,
                     mention="0 or 1")
    else:
        big = {"INT64": 2 ** 63, "INT32": 2 ** 31, "FP16": 70000.0}[dtype]
        assert_error(infer(env["s"], env["d"], name, [{
            "name": "x", "shape": [1, 3], "datatype": dtype,
            "data": [1, 2, big]}]), 400)


def test_cast_bool_to_float(env):
    _deploy_or_skip(env, "cast-bool", gen_onnx(env["root"], "cast",
                                               "--dtype", "BOOL"), "BOOL")
    r = infer(env["s"], env["d"], "cast-bool", [{
        "name": "x", "shape": [1, 3], "datatype": "BOOL",
        "data": [True, False, True]}])
    j, out = parse_response(r)
    assert output_by_name(j, "y")["datatype"] == "FP32"
    assert out["y"].tolist() == [[1.0, 0.0, 1.0]]
    assert_error(infer(env["s"], env["d"], "cast-bool", [{
        "name": "x", "shape": [1, 3], "datatype": "BOOL",
        "data": [1, 0, 1]}]), 400, mention="boolean")


def test_cast_fp16_to_float_json_and_binary(env):
    """FP16 JSON numbers are rounded to half precision by the gateway;
    binary FP16 goes through as it is."""
    _deploy_or_skip(env, "cast-fp16", gen_onnx(env["root"], "cast",
                                               "--dtype", "FP16"), "FP16")
    r = infer(env["s"], env["d"], "cast-fp16", [{
        "name": "x", "shape": [1, 3], "datatype": "FP16",
        "data": [1.5, -2.0, 0.1]}])
    _, out = parse_response(r)
    assert out["y"].tolist() == [[1.5, -2.0, float(np.float16(0.1))]]
    arr = np.array([[65504.0, -0.25, 3.0]], np.float16)
    desc, raw = bin_input("x", arr, "FP16")
    _, out = parse_response(post_binary(env, "cast-fp16", {
        "inputs": [desc], "parameters": {"binary_data_output": True}},
        [raw]))
    assert out["y"].tolist() == [[65504.0, -0.25, 3.0]]
    assert_error(infer(env["s"], env["d"], "cast-fp16", [{
        "name": "x", "shape": [1, 3], "datatype": "FP16",
        "data": [1, 2, 1e6]}]), 400, mention="out of range")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
