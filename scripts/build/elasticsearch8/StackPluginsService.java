package org.elasticsearch.plugins;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import org.elasticsearch.Version;
import org.elasticsearch.action.admin.cluster.node.info.PluginsAndModules;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;

/** A PluginsService whose plugins are classes on the classpath (no plugin/module directories). */
public class StackPluginsService extends PluginsService {
    private final List<LoadedPlugin> classpathPlugins;

    public StackPluginsService(
            Settings settings, Environment env, PluginsLoader loader, Collection<Class<? extends Plugin>> classes) {
        super(settings, env.configDir(), loader);
        List<LoadedPlugin> loaded = new ArrayList<>();
        for (Class<? extends Plugin> cls : classes) {
            PluginDescriptor descriptor = new PluginDescriptor(
                    cls.getName(), "classpath plugin", "NA", Version.CURRENT.toString(),
                    Integer.toString(Runtime.version().feature()), cls.getName(), null, List.of(),
                    false, false, false, false);
            loaded.add(new LoadedPlugin(descriptor, loadPlugin(cls, settings, env.configDir()), cls.getClassLoader()));
        }
        loadExtensions(loaded);
        this.classpathPlugins = List.copyOf(loaded);
    }

    @Override
    protected final List<LoadedPlugin> plugins() {
        return classpathPlugins;
    }

    @Override
    public PluginsAndModules info() {
        return new PluginsAndModules(
                classpathPlugins.stream().map(p -> new PluginRuntimeInfo(p.descriptor())).toList(), List.of());
    }
}
