// Light, dark, or whatever the system prefers; the choice is kept in localStorage.
const THEMES = ['system', 'light', 'dark'];

export function applyTheme() {
  const choice = localStorage.getItem('edge.theme') ?? 'system';
  const dark = choice === 'dark' || (choice === 'system' && matchMedia('(prefers-color-scheme: dark)').matches);
  document.documentElement.dataset.theme = dark ? 'dark' : 'light';
  document.getElementById('theme').textContent = `Theme: ${choice}`;
}

export function nextTheme() {
  const choice = localStorage.getItem('edge.theme') ?? 'system';
  localStorage.setItem('edge.theme', THEMES[(THEMES.indexOf(choice) + 1) % THEMES.length]);
  applyTheme();
}
