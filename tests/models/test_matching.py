"""Hungarian matching and the published loss terms."""

import torch

from edgeseg.models.sparseinst.loss import dice_loss, hungarian_match, mask_iou, sigmoid_focal_loss


def test_matching_pairs_each_target_with_its_best_query():
    masks = torch.zeros(3, 16)
    masks[0, :4] = masks[1, 4:8] = masks[2, 8:12] = 1
    # queries 2 and 0 predict targets 0 and 1 well; query 1 predicts nothing useful
    logits = torch.full((1, 3, 4, 4), -8.0)
    logits[0, 2].view(-1)[:4] = 8
    logits[0, 0].view(-1)[4:8] = 8
    cls = torch.zeros(1, 3, 2)
    outputs = {"pred_masks": logits, "pred_logits": cls}
    rows, cols = hungarian_match(outputs, [torch.tensor([0, 1])], [masks[:2]], 0.8, 0.2)[0]
    assert dict(zip(cols.tolist(), rows.tolist())) == {0: 2, 1: 0}


def test_focal_dice_and_iou_values():
    logits = torch.tensor([[10.0, -10.0, 10.0, -10.0]])
    target = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    assert dice_loss(logits, target).item() < 1e-3
    assert abs(mask_iou(logits, target).item() - 1.0) < 1e-5
    assert sigmoid_focal_loss(logits, target).item() < 1e-6
    assert sigmoid_focal_loss(-logits, target).item() > 1.0
