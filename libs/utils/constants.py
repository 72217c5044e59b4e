"""Numbers shared by training, testing and evaluation: change one here and every path follows."""
from typing import List

# ImageNet statistics the ResNet backbones were trained with; frames in [0, 1] are normalised with them
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# DAVIS / YouTube-VOS annotation id of "void" pixels (object borders, ignored regions)
VOID_LABEL = 255


def davis_palette() -> List[int]:
    """The DAVIS / PASCAL VOC colour map: the bits of each index spread over R, G and B; 768 ints."""
    palette = []
    for index in range(256):
        red = green = blue = 0
        code = index
        for bit in range(8):
            red |= ((code >> 0) & 1) << (7 - bit)
            green |= ((code >> 1) & 1) << (7 - bit)
            blue |= ((code >> 2) & 1) << (7 - bit)
            code >>= 3
        palette.extend((red, green, blue))
    return palette
