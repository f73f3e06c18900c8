// The image format: CRIU-compatible framing, magics, messages, and image files.
export * from './magic.js';
export { PE } from './pagemap-flags.js';
export { normalisePagemapEntry, pagemapEntry, pagemapCount, packTermiosCc } from './compat.js';
export { MAX_ENTRY_SIZE } from './framing.js';
export {
  IMAGE_KINDS,
  imageFileName,
  kindsForFileName,
  isRawImage,
  type ImageKindName,
  type FramedKindName,
  type KindDef,
  type NameArg,
  type ImageContent,
  type ImageItem,
  type ImageHead,
  type PayloadItem,
  type HeadImage,
  type GhostFileImage,
  type Layout,
} from './image-kinds.js';
export { encodeImage, decodeImage, decodeAnyImage, type AnyImage, type DecodeOptions, type EncodeOptions } from './codec.js';
export { writeImage, readImage, readImageFile, readPagemapImage, imageExists, imagePath } from './image-file.js';
export { ImageWriter, type HeadArgs } from './image-writer.js';
export { writePagemapImage, type PagemapItem } from './pagemap-writer.js';
