package org.elasticsearch.node;

import java.util.Collection;
import java.util.Map;
import java.util.Set;
import org.elasticsearch.env.Environment;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.plugins.PluginsLoader;
import org.elasticsearch.plugins.PluginsService;
import org.elasticsearch.plugins.StackPluginsService;

/** A Node whose plugins are classes on the classpath, like the test framework's MockNode. */
public class StackNode extends Node {
    public StackNode(Environment env, Collection<Class<? extends Plugin>> plugins) {
        super(construct(env, plugins));
    }

    private static NodeConstruction construct(Environment env, Collection<Class<? extends Plugin>> plugins) {
        PluginsLoader loader = PluginsLoader.createPluginsLoader(Set.of(), Set.of(), Map.of(), false);
        NodeServiceProvider provider = new NodeServiceProvider() {
            @Override
            PluginsService newPluginService(Environment environment, PluginsLoader pluginsLoader) {
                return new StackPluginsService(environment.settings(), environment, pluginsLoader, plugins);
            }
        };
        return NodeConstruction.prepareConstruction(env, loader, provider, true);
    }
}
