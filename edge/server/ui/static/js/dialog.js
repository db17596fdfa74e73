// A small modal dialog (the page's own, styled like it) for rename, delete and the API key.
const $ = (id) => document.getElementById(id);

/** A small modal: resolves to the typed text (or '' for a confirmation), or null when cancelled. */
export function ask({ text, value = '', confirm = false, password = false }) {
  const dialog = $('dialog');
  const input = $('dialog-input');
  $('dialog-text').textContent = text;
  input.hidden = confirm;
  input.type = password ? 'password' : 'text';
  input.value = value;
  return new Promise((resolve) => {
    const finish = (result) => {
      dialog.close();
      $('dialog-ok').onclick = $('dialog-cancel').onclick = input.onkeydown = dialog.oncancel = null;
      resolve(result);
    };
    $('dialog-ok').onclick = () => finish(confirm ? '' : input.value);
    $('dialog-cancel').onclick = () => finish(null);
    dialog.oncancel = () => finish(null);
    input.onkeydown = (event) => {
      if (event.key === 'Enter') finish(input.value);
    };
    dialog.showModal();
    (confirm ? $('dialog-ok') : input).focus();
  });
}
