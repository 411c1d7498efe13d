"""Linked views: a clicked patch's cosine-similarity maps across layers, and the layer strip.

Expected values are computed here from `bb.extract` with a cosine similarity written in the
test; the patch grid of a ViT comes from timm's own patch embedding, not from the widget.
"""

from __future__ import annotations

import numpy as np

import nbfeat


def _cosine_map(fmap, row, col):
    c, h, w = fmap.shape
    x = fmap.reshape(c, -1).astype(np.float64)
    x = x / (np.linalg.norm(x, axis=0, keepdims=True) + 1e-12)
    return (x[:, row * w + col] @ x).reshape(h, w)


def _decode(reply, buffers, name):
    spec = next(a for a in reply["arrays"] if a["name"] == name)
    return np.frombuffer(bytes(buffers[[a["name"] for a in reply["arrays"]].index(name)]), dtype=spec["dtype"]).reshape(spec["shape"])


def test_a_clicked_patch_is_compared_at_every_linked_layer(resnet, pictures):
    ex = nbfeat.explore(resnet, pictures[:2])
    ex.tree.set_state({"selected": ["layer1", "layer3", "fc"], "focused": "layer3"})
    assert ex.browser.linked_layers == ["layer1", "layer3", "fc"]
    reply, buffers = ex.browser.handle_request({"id": 1, "kind": "similarity", "sample": 1, "layer": "layer3", "fy": 0.3, "fx": 0.8})
    assert reply["ok"], reply
    assert [m["layer"] for m in reply["maps"]] == ["layer3", "layer1"] and reply["skipped"] == ["fc"]  # fc has no map
    ds = resnet.extract(pictures[:2], layers=["layer1", "layer3"], progress=False)
    sims = _decode(reply, buffers, "similarity")
    for k, m in enumerate(reply["maps"]):
        fmap = ds[m["layer"]][m["layer"]].values[1]
        h, w = fmap.shape[1:]
        assert m["grid"] == [h, w] and m["patch"] == [int(0.3 * h), int(0.8 * w)]
        want = _cosine_map(fmap, *m["patch"])
        assert abs(m["min"] - want.min()) < 1e-5
        assert sims[k].max() == 255  # the clicked patch itself: similarity 1
        rows = np.minimum(((np.arange(48) + 0.5) * h / 48).astype(int), h - 1)
        cols = np.minimum(((np.arange(48) + 0.5) * w / 48).astype(int), w - 1)
        expect = np.rint((want[rows][:, cols] - want.min()) / (1 - want.min()) * 255)
        assert np.abs(sims[k].astype(float) - expect).max() <= 1


def test_vit_patches_use_the_models_grid_and_the_strip_has_one_map_per_layer():
    import timm

    vit = nbfeat.load("timm:vit_tiny_patch16_224", pretrained=False, device="cpu", model_kwargs={"img_size": 64})
    grid = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=64).patch_embed.grid_size  # timm's own
    images = [np.random.default_rng(i).integers(0, 255, (50, 70, 3), dtype=np.uint8) for i in range(2)]
    w = nbfeat.browse(vit, images, layer="blocks.2")
    assert w.linked_layers == [f"blocks.{i}" for i in (0, 2, 3, 5, 6, 8, 9, 11)]  # 8 spread over depth
    reply, buffers = w.handle_request({"id": 1, "kind": "similarity", "sample": 0, "layer": "blocks.2", "fy": 0.9, "fx": 0.1})
    assert reply["ok"] and reply["maps"][0]["grid"] == list(grid) and reply["maps"][0]["patch"] == [3, 0]
    tokens = vit.extract(images, layers=["blocks.2"], progress=False)["blocks.2"].values[0]
    fmap = tokens[vit.prefix_tokens :].T.reshape(-1, *grid)
    assert abs(reply["maps"][0]["min"] - _cosine_map(fmap, 3, 0).min()) < 1e-5
    reply, buffers = w.handle_request({"id": 2, "kind": "strip", "sample": 1})
    assert reply["ok"] and [m["layer"] for m in reply["strip"]] == w.linked_layers
    assert _decode(reply, buffers, "strip").shape == (8, 48, 48, 3)
    assert w.source.extractions <= 2  # the shown layer, then every other block in one pass


def test_windowed_models_place_patches_from_the_adapters_layout():
    import timm

    swin = nbfeat.load("timm:swin_tiny_patch4_window7_224", pretrained=False, device="cpu", model_kwargs={"img_size": 112})
    # timm's own metadata: stage i is `reduction` pixels per position
    info = {f["module"].replace("_", "."): f["reduction"] for f in timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, img_size=112).feature_info}
    images = [np.random.default_rng(i).integers(0, 255, (60, 80, 3), dtype=np.uint8) for i in range(2)]
    w = nbfeat.browse(swin, images, layer="layers.1")
    w.linked_layers = ["layers.1", "layers.2"]
    reply, _ = w.handle_request({"id": 1, "kind": "similarity", "sample": 0, "layer": "layers.1", "fy": 0.5, "fx": 0.25})
    assert reply["ok"], reply
    grids = {m["layer"]: m["grid"] for m in reply["maps"]}
    assert grids == {name: [112 // info[name]] * 2 for name in ("layers.1", "layers.2")}
    assert reply["maps"][0]["patch"] == [7, 3]


def test_the_input_shown_is_what_the_model_saw_so_a_click_on_it_picks_the_patch_under_it():
    import timm
    from PIL import Image
    from timm.data import create_transform, resolve_data_config

    vit = nbfeat.load("timm:vit_tiny_patch16_224", pretrained=False, device="cpu", model_kwargs={"img_size": 64})
    ref = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=64)
    config = resolve_data_config({"input_size": (3, 64, 64)}, model=ref)
    transform = create_transform(**config)  # timm's own eval transform: resize 71, centre crop 64
    # a wide image (150 x 60) with a white block right of the centre; the crop keeps the middle
    img = np.zeros((60, 150, 3), dtype=np.uint8)
    img[5:30, 80:110] = 255
    w = nbfeat.browse(vit, [img], layer="blocks.2")
    reply, buffers = w.handle_request({"id": 1, "kind": "view", "sample": 0, "layer": "blocks.2", "thumb": True})
    assert reply["ok"] and reply["thumb_seen"] is True
    thumb = _decode(reply, buffers, "thumb")
    x = transform(Image.fromarray(img)).numpy()
    want = np.moveaxis(x * np.asarray(config["std"])[:, None, None] + np.asarray(config["mean"])[:, None, None], 0, -1)
    want = np.clip(np.rint(want * 255), 0, 255).astype(np.uint8)
    assert thumb.shape == want.shape == (64, 64, 3)
    assert np.abs(thumb.astype(int) - want.astype(int)).max() <= 1
    # a click on the middle of the white block in the picture shown...
    ys, xs = np.nonzero(thumb[..., 0] > 200)
    fy, fx = (ys.mean() + 0.5) / 64, (xs.mean() + 0.5) / 64
    w.patch = [fy, fx]
    reply, _ = w.handle_request({"id": 2, "kind": "similarity", "sample": 0, "layer": "blocks.2", "fy": fy, "fx": fx})
    row, col = reply["maps"][0]["patch"]
    grid = ref.patch_embed.patch_size  # 16 px, timm's own
    # ...picks the patch that holds most of the block in the model's own input
    white = (want[..., 0] > 200).reshape(64 // grid[0], grid[0], 64 // grid[1], grid[1]).sum(axis=(1, 3))
    assert (row, col) == np.unravel_index(np.argmax(white), white.shape) and white[row, col] > 0.9 * grid[0] * grid[1]
    # while the same fractions of the original image fall off the block (the crop cut its sides)
    assert img[int(fy * 60), int(fx * 150)].max() == 0


def test_a_hugging_face_image_processor_crops_the_input_shown(tmp_path):
    from PIL import Image
    from transformers import AutoImageProcessor

    from nbfeat.examples import save_tiny_dinov2

    path = save_tiny_dinov2(tmp_path / "dinov2")  # BitImageProcessor: shortest edge 32, crop 28
    vit = nbfeat.load("hf:" + str(path), device="cpu")
    img = np.random.default_rng(3).integers(0, 255, (40, 90, 3), dtype=np.uint8)  # wide
    w = nbfeat.browse(vit, [img], layer=vit.blocks[-1])
    reply, buffers = w.handle_request({"id": 1, "kind": "view", "sample": 0, "layer": vit.blocks[-1], "thumb": True})
    assert reply["ok"] and reply["thumb_seen"] is True
    # the repository's own processor, without its normalization: what the model saw, in 0..1
    want = AutoImageProcessor.from_pretrained(path)(images=Image.fromarray(img), do_normalize=False, return_tensors="np")["pixel_values"][0]
    want = np.rint(np.moveaxis(want, 0, -1) * 255).astype(int)
    assert want.shape == (28, 28, 3)
    assert np.abs(_decode(reply, buffers, "thumb").astype(int) - want).max() <= 1


def test_browsing_results_the_input_is_cropped_as_recorded_else_the_original(tmp_path, resnet):
    from PIL import Image
    from torchvision.models import ResNet18_Weights

    from nbfeat.examples import make_images

    folder = make_images(tmp_path / "imgs", per_class=1, size=48)
    w = nbfeat.browse(resnet.extract(folder, layers=["layer1"], progress=False))
    reply, buffers = w.handle_request({"id": 1, "kind": "view", "sample": 0, "layer": "layer1", "thumb": True})
    assert reply["thumb_seen"] is True  # the results record torchvision's preset: rebuilt, the same
    want = ResNet18_Weights.IMAGENET1K_V1.transforms(antialias=True)  # torchvision's own
    x = want(Image.open(sorted((tmp_path / "imgs").rglob("*.png"))[0]).convert("RGB")).numpy()
    x = np.moveaxis(x * np.asarray(want.std)[:, None, None] + np.asarray(want.mean)[:, None, None], 0, -1)
    seen = Image.fromarray(np.clip(np.rint(x * 255), 0, 255).astype(np.uint8))
    seen.thumbnail((160, 160))
    assert np.abs(_decode(reply, buffers, "thumb").astype(int) - np.asarray(seen, dtype=int)).max() <= 1
    # a model loaded with model_kwargs (img_size=64) is not what its id rebuilds (224): the
    # recorded preprocessing differs, so the panel is the original file and takes no clicks
    vit = nbfeat.load("timm:vit_tiny_patch16_224", pretrained=False, device="cpu", model_kwargs={"img_size": 64})
    w = nbfeat.browse(vit.extract(folder, layers=["blocks.1"], progress=False))
    reply, buffers = w.handle_request({"id": 2, "kind": "view", "sample": 0, "layer": "blocks.1", "thumb": True})
    assert reply["thumb_seen"] is False and _decode(reply, buffers, "thumb").shape == (48, 48, 3)
