"""Object detection: the seed's multi-box head on ResNet34 and torchvision's SSD300 / SSDlite (Liu et al., ECCV 2016),
Pascal VOC and COCO readers, anchors, matching, losses, NMS and VOC / COCO mAP."""
