// Images from a file picker, the clipboard or a drop, read into data: URLs (they never leave the page
// except inside the request to this server).

export const imageFiles = (files) => [...files].filter((file) => file.type.startsWith('image/'));

export function dataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

/** Calls `onFiles(files)` for files dropped anywhere on the page, showing `overlay` while they hover. */
export function bindDrop(overlay, onFiles) {
  const hasFiles = (event) => event.dataTransfer?.types.includes('Files');
  document.addEventListener('dragover', (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    overlay.hidden = false;
  });
  document.addEventListener('dragleave', (event) => {
    if (event.relatedTarget === null) overlay.hidden = true;
  });
  document.addEventListener('drop', (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    overlay.hidden = true;
    onFiles(event.dataTransfer.files);
  });
}
